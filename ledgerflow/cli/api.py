"""``ledgerflow api``: the REST gateway (FastAPI on uvicorn)."""

from __future__ import annotations

import os

import click
import uvicorn

from ledgerflow import activity, logs
from ledgerflow.cli.options import insecure_option, kafka_options

RETIRED_KEYS_ENV = "LEDGERFLOW_API_KEYS"


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
@insecure_option(
    "without LEDGERFLOW_API_KEYS_FILE or LEDGERFLOW_JWT_JWKS_URL every caller may do everything; "
    "without LEDGERFLOW_ENGINE_TOKEN_FILE reads reach only engines started --insecure"
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
    insecure: bool,
    log_level: str,
) -> None:
    """Run the REST gateway (OpenAPI at /docs).

    Callers authenticate with API keys (LEDGERFLOW_API_KEYS_FILE) or JWTs (LEDGERFLOW_JWT_*);
    without either it refuses to start unless --insecure is given.
    """
    from ledgerflow.api.app import GatewaySettings, create_app
    from ledgerflow.api.keys import KeysFileError
    from ledgerflow.api.settings import InsecureSettingsError
    from ledgerflow.engine_token import EngineTokenError

    logs.configure()
    if RETIRED_KEYS_ENV in os.environ:
        raise click.ClickException(
            f"{RETIRED_KEYS_ENV} (plain keys) is no longer read: make hashed keys with "
            "'ledgerflow api-key create' into a file named by LEDGERFLOW_API_KEYS_FILE, then unset it"
        )
    base = GatewaySettings()
    overrides: dict[str, object] = {
        "bootstrap": bootstrap,
        "prefix": prefix,
        "partitions": partitions,
        "replication_factor": replication_factor,
        "insecure": insecure or base.insecure,
    }
    if modules:
        try:
            names = sorted(activity.collect(modules))
        except ImportError as exc:
            raise click.ClickException(f"cannot import activities: {exc}") from exc
        overrides["activity_types"] = [*base.activity_types, *names]
    settings = GatewaySettings.model_validate({**base.model_dump(), **overrides})
    try:
        app = create_app(settings)
    except (InsecureSettingsError, KeysFileError, EngineTokenError) as exc:
        raise click.ClickException(str(exc)) from exc
    missing = settings.insecure_reasons()
    click.echo(
        f"gateway on http://{host}:{port} (Kafka {settings.bootstrap}, prefix {settings.prefix!r}, "
        f"auth {'on' if settings.auth_enabled else 'OFF'})"
        + (f"; INSECURE: {'; '.join(missing)}" if missing else ""),
        err=True,
    )
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False, lifespan="on")
