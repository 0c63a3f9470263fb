"""Options every command shares (``--bootstrap``, ``--prefix``, shard layout)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ledgerflow.config import Settings
from ledgerflow.kafkaprops import FILE_ENV

F = TypeVar("F", bound=Callable[..., Any])


def _use_kafka_config(_ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    # Through the environment: every Settings this process builds reads it, and so do the
    # processes it starts (`ledgerflow dev`).
    if value:
        os.environ[FILE_ENV] = value


def kafka_options(func: F) -> F:
    """Add ``--bootstrap``, ``--kafka-config``, ``--prefix``, ``--partitions``,
    ``--replication-factor``.

    Each falls back to its ``LEDGERFLOW_*`` environment variable.
    """
    defaults = Settings()
    options = [
        click.option(
            "--bootstrap",
            envvar="LEDGERFLOW_BOOTSTRAP",
            default=defaults.bootstrap,
            show_default=True,
            help="Kafka bootstrap servers (env LEDGERFLOW_BOOTSTRAP).",
        ),
        click.option(
            "--kafka-config",
            type=click.Path(exists=True, dir_okay=False),
            expose_value=False,
            is_eager=True,
            callback=_use_kafka_config,
            help=f"File of Kafka client properties, name=value lines: TLS, SASL (env {FILE_ENV}); "
            "LEDGERFLOW_KAFKA_<PROPERTY> variables win over it.",
        ),
        click.option(
            "--prefix",
            envvar="LEDGERFLOW_PREFIX",
            default=defaults.prefix,
            show_default=True,
            help="Prefix of every topic name.",
        ),
        click.option(
            "--partitions",
            envvar="LEDGERFLOW_PARTITIONS",
            type=int,
            default=defaults.partitions,
            show_default=True,
            help="Shard count: partitions of the inbox, changelog and events.",
        ),
        click.option(
            "--replication-factor",
            envvar="LEDGERFLOW_REPLICATION_FACTOR",
            type=int,
            default=defaults.replication_factor,
            show_default=True,
            help="Replication factor of created topics.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def settings_from(bootstrap: str, prefix: str, partitions: int, replication_factor: int) -> Settings:
    return Settings(
        bootstrap=bootstrap, prefix=prefix, partitions=partitions, replication_factor=replication_factor
    )


def insecure_option(what: str) -> Callable[[F], F]:
    """``--insecure`` (env ``LEDGERFLOW_INSECURE``): start without credentials, to ``what``."""
    return click.option(
        "--insecure",
        is_flag=True,
        envvar="LEDGERFLOW_INSECURE",
        help=f"Start without credentials: {what}. For local development only.",
    )
