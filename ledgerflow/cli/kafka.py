"""``ledgerflow kafka up|down|status``: a local KRaft Kafka on loopback, without Docker."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from ledgerflow.local.kafka import KafkaStartError, KafkaStatus, LocalKafka, LocalKafkaError
from ledgerflow.local.kafka.secure import USERS

_DATA_DIR_HELP = "Folder of the cluster's data, logs and PID files (env LEDGERFLOW_LOCAL_KAFKA_DIR)."

F = TypeVar("F", bound=Callable[..., Any])


def _data_dir_option(func: F) -> F:
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="LEDGERFLOW_LOCAL_KAFKA_DIR",
        default=Path(".ledgerflow/kafka"),
        show_default=True,
        help=_DATA_DIR_HELP,
    )(func)


@contextmanager
def progress_reporter(
    console: Console, title: str = "Starting local Kafka"
) -> Iterator[Callable[[str], None]]:
    """A spinner on a terminal, plain lines on stderr otherwise (logs, CI, tests)."""
    if not console.is_terminal:
        yield lambda message: console.print(message, highlight=False)
        return
    with console.status(title) as status:
        yield lambda message: status.update(message)


def _fail(exc: LocalKafkaError) -> None:
    if isinstance(exc, KafkaStartError) and exc.report:
        click.echo(exc.report, err=True)
    click.echo(f"error: {exc}", err=True)
    raise SystemExit(1)


@click.group(name="kafka")
def kafka_group() -> None:
    """A local Apache Kafka (KRaft) on 127.0.0.1 for development and tests."""


@kafka_group.command()
@click.option(
    "--brokers",
    type=click.Choice(["1", "3"]),
    default=None,
    help="Nodes (combined broker+controller); default: what the data dir holds, else 1.",
)
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Client port of node 1.")
@click.option("--timeout", type=float, default=120.0, show_default=True, help="Seconds to wait for ready.")
@click.option(
    "--secure",
    is_flag=True,
    default=None,
    help="TLS on every listener, SCRAM users and client certificates for each component, ACLs "
    "enforced; prints the client settings files. Default: what the data dir holds, else plaintext.",
)
@click.option(
    "--oidc-jwks",
    "oidc_jwks_url",
    default=None,
    help="With --secure: also accept OAUTHBEARER tokens (audience 'kafka') signed by a key of this "
    "OIDC provider's JWKS URL (give it on every up); the principal is the token's 'sub'.",
)
@_data_dir_option
def up(
    brokers: str | None,
    port: int | None,
    timeout: float,
    secure: bool | None,
    oidc_jwks_url: str | None,
    data_dir: Path,
) -> None:
    """Start Kafka (idempotent) and print its bootstrap address as the last line."""
    console = Console(stderr=True)
    if oidc_jwks_url and not secure:
        raise click.UsageError("--oidc-jwks needs --secure")
    try:
        with progress_reporter(console) as progress:
            kafka = LocalKafka(
                data_dir,
                brokers=int(brokers) if brokers else None,
                port=port,
                secure=secure,
                oidc_jwks_url=oidc_jwks_url,
                start_timeout=timeout,
                progress=progress,
            )
            bootstrap = kafka.up()
    except LocalKafkaError as exc:
        _fail(exc)
        return
    if kafka.mtls_bootstrap is not None:
        _print_secure(kafka)
    click.echo(f"export LEDGERFLOW_BOOTSTRAP={bootstrap}", err=True)
    click.echo(bootstrap)


def _print_secure(kafka: LocalKafka) -> None:
    files = kafka.secure_files
    click.echo(
        f"secure: SASL_SSL (SCRAM-SHA-512/256) at {kafka.bootstrap}, mutual TLS at {kafka.mtls_bootstrap}\n"
        f"client settings per principal in {files.folder}: <user>.properties (SCRAM), "
        f"<user>-mtls.properties (mTLS); users {', '.join(USERS)}; CA {files.ca}\n"
        "grant each component its ACLs under your prefix (as admin):\n"
        f"  LEDGERFLOW_KAFKA_CONFIG={files.properties('admin')} ledgerflow topics grant --prefix <prefix>\n"
        "run a component as its principal:\n"
        f"  export LEDGERFLOW_KAFKA_CONFIG={files.properties('engine')}",
        err=True,
    )


@kafka_group.command()
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds before SIGKILL.")
@_data_dir_option
def down(timeout: float, data_dir: Path) -> None:
    """Stop the brokers started from this data dir (data is kept)."""
    kafka = LocalKafka(data_dir)
    try:
        kafka.down(timeout=timeout)
    except LocalKafkaError as exc:
        _fail(exc)
    click.echo(f"stopped ({kafka.data_dir})")


@kafka_group.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@_data_dir_option
def status(as_json: bool, data_dir: Path) -> None:
    """Whether the brokers of this data dir run (PIDs checked, not just PID files)."""
    try:
        result = LocalKafka(data_dir).status()
    except LocalKafkaError as exc:
        _fail(exc)
        return
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    _print_status(result)


def _print_status(result: KafkaStatus) -> None:
    console = Console()
    if not result.brokers:
        console.print(f"absent: no local Kafka in {result.data_dir}", highlight=False)
        return
    table = Table(title=f"{result.state} — {result.data_dir}", title_justify="left")
    for column in ("node", "address", "pid", "alive"):
        table.add_column(column, no_wrap=True)
    table.add_column("log", overflow="fold")
    for broker in result.brokers:
        table.add_row(
            str(broker.node_id),
            broker.address,
            str(broker.pid or "-"),
            "yes" if broker.alive else "no",
            str(broker.log_path),
        )
    console.print(table)
    if result.bootstrap:
        console.print(f"bootstrap: {result.bootstrap}", highlight=False)
