"""``ledgerflow api``: the REST gateway (FastAPI on uvicorn)."""

from __future__ import annotations

import click
import uvicorn

from ledgerflow import activity, logs
from ledgerflow.cli.options import kafka_options


@click.command("api")
@kafka_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=int, default=8080, show_default=True, help="Port to listen on.")
@click.option(
    "--activities",
    "modules",
    multiple=True,
    help="Module(s) with @activity.defn functions: their names are valid DAG node types.",
)
@click.option(
    "--api-key",
    "api_keys",
    multiple=True,
    help="Accepted API key (repeatable; env LEDGERFLOW_API_KEYS, comma-separated). None: no auth.",
)
@click.option("--log-level", default="warning", show_default=True, help="uvicorn's log level.")
def api_command(
    bootstrap: str,
    prefix: str,
    partitions: int,
    replication_factor: int,
    host: str,
    port: int,
    modules: tuple[str, ...],
    api_keys: tuple[str, ...],
    log_level: str,
) -> None:
    """Run the REST gateway (OpenAPI at /docs)."""
    from ledgerflow.api.app import GatewaySettings, create_app

    logs.configure()
    base = GatewaySettings()
    overrides: dict[str, object] = {
        "bootstrap": bootstrap,
        "prefix": prefix,
        "partitions": partitions,
        "replication_factor": replication_factor,
    }
    if modules:
        try:
            names = sorted(activity.collect(modules))
        except ImportError as exc:
            raise click.ClickException(f"cannot import activities: {exc}") from exc
        overrides["activity_types"] = [*base.activity_types, *names]
    if api_keys:
        overrides["api_keys"] = [*base.api_keys, *api_keys]
    settings = GatewaySettings.model_validate({**base.model_dump(), **overrides})
    click.echo(
        f"gateway on http://{host}:{port} (Kafka {settings.bootstrap}, prefix {settings.prefix!r}, "
        f"auth {'on' if settings.auth_enabled else 'off'})",
        err=True,
    )
    uvicorn.run(
        create_app(settings), host=host, port=port, log_level=log_level, access_log=False, lifespan="on"
    )
