"""``ledgerflow engine`` and ``ledgerflow worker``: the long-running processes."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

import click
from pydantic import ValidationError

from ledgerflow import activity, logs
from ledgerflow.cli.options import insecure_option, kafka_options, settings_from
from ledgerflow.codec.keyfile import load_codec
from ledgerflow.dag.node_types import PURE_BUILTINS
from ledgerflow.engine.http import HttpServer, create_app
from ledgerflow.engine.kafka.admin import ensure_queue_topics, ensure_topics
from ledgerflow.engine.kafka.group import GROUP_PROTOCOLS, GroupProtocol
from ledgerflow.engine.loop import Engine, EngineOptions, tune_garbage_collector
from ledgerflow.engine_token import EngineTokenError, token_from
from ledgerflow.errors import DeploymentMovedError, TopicLayoutError
from ledgerflow.executors import builtins
from ledgerflow.executors.claims import ClaimStore
from ledgerflow.executors.sandbox.settings import BuiltinSettings, split_list
from ledgerflow.executors.worker import Worker
from ledgerflow.sdk.definition import WorkflowRegistry

MAX_RETENTION = 100 * 365 * 24 * 3600.0
"""A century: longer retentions would arm timers past the latest a timer key can hold."""


@click.command("engine")
@kafka_options
@click.option("--workflows", "modules", multiple=True, help="Module(s) with @workflow.defn workflows.")
@click.option("--data-dir", type=click.Path(path_type=Path), required=True, help="Folder for RocksDB state.")
@click.option(
    "--http-port",
    type=int,
    default=8081,
    show_default=True,
    help="Port of owner reads, /metrics, /health, /ready.",
)
@click.option("--http-host", default="127.0.0.1", show_default=True)
@click.option(
    "--advertise",
    envvar="LEDGERFLOW_ADVERTISED_URL",
    default=None,
    help="URL the gateway uses to reach this node.",
)
@click.option(
    "--max-batch", type=int, default=500, show_default=True, help="Most inbox records per transaction."
)
@click.option(
    "--max-open-per-partition", type=int, default=None, help="Refuse starts beyond this (per partition)."
)
@click.option(
    "--max-open-workflows", type=int, default=None, help="Refuse starts beyond this many on this node."
)
@click.option(
    "--retention",
    type=click.FloatRange(min=0, min_open=True, max=MAX_RETENTION),
    default=None,
    help="Seconds a closed run's state and history are kept, then deleted (default: forever).",
)
@click.option("--standby", is_flag=True, help="Keep warm copies of the partitions other nodes own.")
@click.option(
    "--session-timeout-ms",
    type=int,
    default=6000,
    show_default=True,
    help="Silence after which the group moves this node's partitions (failover time).",
)
@click.option(
    "--group-protocol",
    type=click.Choice(GROUP_PROTOCOLS),
    default="classic",
    show_default=True,
    help="Kafka group protocol of the engines: classic (client-side cooperative-sticky) or "
    "consumer (KIP-848, broker-side; its session timeout is set as a group config).",
)
@insecure_option("serve the HTTP routes without the engine token when LEDGERFLOW_ENGINE_TOKEN_FILE is unset")
def engine_command(
    bootstrap: str,
    prefix: str,
    partitions: int,
    replication_factor: int,
    modules: tuple[str, ...],
    data_dir: Path,
    http_port: int,
    http_host: str,
    advertise: str | None,
    max_batch: int,
    max_open_per_partition: int | None,
    max_open_workflows: int | None,
    retention: float | None,
    standby: bool,
    session_timeout_ms: int,
    group_protocol: GroupProtocol,
    insecure: bool,
) -> None:
    """Run a partition-owner node."""
    logs.configure()
    settings = settings_from(bootstrap, prefix, partitions, replication_factor)
    try:
        token = token_from(settings.engine_token_file)
    except EngineTokenError as exc:
        raise click.ClickException(str(exc)) from exc
    if token is None and not insecure:
        raise click.ClickException(
            "no engine token: set LEDGERFLOW_ENGINE_TOKEN_FILE (a file made by "
            "'ledgerflow engine-token create'), or pass --insecure (LEDGERFLOW_INSECURE=true) "
            "to serve the engine's HTTP routes to anyone"
        )
    try:
        ensure_topics(settings)
    except TopicLayoutError as exc:
        raise click.ClickException(str(exc)) from exc
    registry = WorkflowRegistry.from_modules(modules)
    url = advertise or f"http://{http_host}:{http_port}"
    options = EngineOptions(
        data_dir=data_dir,
        advertised_url=url,
        max_batch=max_batch,
        session_timeout_ms=session_timeout_ms,
        group_protocol=group_protocol,
        max_open_per_partition=max_open_per_partition,
        max_open_per_engine=max_open_workflows,
        retention=retention,
        standby=standby,
    )
    tune_garbage_collector()
    engine = Engine(settings, options, registry)
    server = HttpServer(create_app(engine, token), http_host, http_port)
    server.start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: engine.stop())
    click.echo(
        f"engine {engine.node_id} serving {url}; workflows: {', '.join(registry.names()) or 'none'}"
        f"{'' if token else '; INSECURE: its HTTP routes need no token'}",
        err=True,
    )
    try:
        engine.run()
    except DeploymentMovedError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        server.stop()


@click.command("worker")
@kafka_options
@click.option("--activities", "modules", multiple=True, help="Module(s) with @activity.defn functions.")
@click.option("--queue", default="default", show_default=True, help="Task queue to serve.")
@click.option("--concurrency", type=int, default=100, show_default=True, help="Activities run at once.")
@click.option(
    "--shutdown-grace",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds SIGTERM waits for running activities; those still running then are abandoned "
    "uncommitted, so another worker runs them again.",
)
@click.option(
    "--builtins",
    "enabled_builtins",
    default=None,
    help="Built-in activities this worker runs, comma-separated (env LEDGERFLOW_BUILTINS; default: "
    f"the pure ones, {', '.join(sorted(PURE_BUILTINS))}). I/O built-ins also need their sandbox "
    "settings (docs/dag.md).",
)
def worker_command(
    bootstrap: str,
    prefix: str,
    partitions: int,
    replication_factor: int,
    modules: tuple[str, ...],
    queue: str,
    concurrency: int,
    shutdown_grace: float,
    enabled_builtins: str | None,
) -> None:
    """Run an executor worker for one task queue."""
    logs.configure()
    settings = settings_from(bootstrap, prefix, partitions, replication_factor)
    builtin_settings = builtin_settings_from(enabled_builtins)
    own = activity.collect(modules)
    claims = ClaimStore(settings, load_codec(settings))
    activities = {**builtins.worker_builtins(builtin_settings, settings, claims), **own}
    try:
        # its queue's topic only: the rest are the engine's, which a worker may not create
        ensure_queue_topics(settings, (queue,))
    except TopicLayoutError as exc:
        raise click.ClickException(str(exc)) from exc
    worker = Worker(settings, activities, queue=queue, concurrency=concurrency, shutdown_grace=shutdown_grace)
    enabled = ", ".join(sorted(builtin_settings.builtins - own.keys())) or "none"
    click.echo(
        f"worker on queue {queue!r}: {', '.join(sorted(own)) or 'no activities'}; built-ins: {enabled}",
        err=True,
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop)
        await worker.run()

    asyncio.run(main())
    if worker.abandoned:
        # A synchronous activity's thread cannot be stopped, and the interpreter joins such
        # threads at exit: without this the grace would end only when the activity does.
        click.echo(f"worker abandoned {worker.abandoned} running activities after the grace", err=True)
        logging.shutdown()
        os._exit(0)


def builtin_settings_from(enabled: str | None) -> BuiltinSettings:
    """The worker's built-in settings from the environment, ``--builtins`` taking precedence."""
    try:
        return (
            BuiltinSettings() if enabled is None else BuiltinSettings(builtins=frozenset(split_list(enabled)))
        )
    except ValidationError as exc:
        raise click.ClickException(f"invalid built-in settings: {exc}") from exc
