"""A worker's built-in settings: which built-ins it runs, and the sandbox of those doing I/O.

Read once from the environment (``LEDGERFLOW_*``) when the worker starts; list settings take a
comma-separated string, e.g. ``LEDGERFLOW_BUILTINS=echo,http.request``. Everything that does I/O
is off until named, and enabled I/O built-ins still reach nothing until their sandbox setting
names what they may reach (roots, hosts, topics).
"""

from __future__ import annotations

import re
from ipaddress import IPv4Network, IPv6Network, ip_address
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ledgerflow.config import ENV_PREFIX
from ledgerflow.dag.node_types import ALL_BUILTINS, PURE_BUILTINS

BUILTINS_SETTING = f"{ENV_PREFIX}BUILTINS (ledgerflow worker --builtins)"
"""How an operator enables built-ins, as refusals name it."""

HOST_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")
"""A DNS name in ASCII (IDNA) form, lower case."""
Names = Annotated[tuple[str, ...], NoDecode]
Network = IPv4Network | IPv6Network


def env_name(field: str) -> str:
    """The environment variable of a setting, as refusals name it."""
    return f"{ENV_PREFIX}{field.upper()}"


class BuiltinSettings(BaseSettings):
    """Which built-ins a worker runs, and where those doing I/O may reach."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    builtins: Annotated[frozenset[str], NoDecode] = Field(
        default=PURE_BUILTINS,
        description="Built-ins this worker runs (env: comma-separated names; empty: none). A task "
        "for another built-in fails, not retried, with BuiltinDisabled. Default: the pure ones.",
    )
    file_roots: Annotated[tuple[Path, ...], NoDecode] = Field(
        default=(),
        description="Folders the file and csv built-ins may read and write in (absolute paths); "
        "none: they refuse every path.",
    )
    file_max_bytes: int = Field(
        default=1024 * 1024, ge=1, description="Largest file the file and csv built-ins read or write."
    )
    http_allowed_hosts: Names = Field(
        default=(),
        description="Hosts http.request may reach: exact names or IP literals, or '*.example.com' "
        "for its subdomains; none: it refuses every URL.",
    )
    http_allowed_networks: Annotated[tuple[Network, ...], NoDecode] = Field(
        default=(),
        description="Non-public address ranges (CIDR) http.request may connect to after all. "
        "Loopback, link-local (cloud metadata), private, shared, reserved and multicast addresses "
        "are refused unless named here.",
    )
    http_ca_file: Path | None = Field(
        default=None,
        description="CA certificates (PEM) http.request trusts for https; default: the certifi bundle.",
    )
    http_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds one http.request may take in all (redirects and body included); "
        "its input's 'timeout' may only lower it.",
    )
    http_max_body_bytes: int = Field(
        default=1024 * 1024, ge=1, description="Largest response body http.request reads; larger ones fail."
    )
    http_max_redirects: int = Field(
        default=5, ge=0, description="Redirects http.request follows, each one checked like the first."
    )
    produce_topics: Names = Field(
        default=(),
        description="Topics kafka.produce may write: exact names, or 'orders.*' for every topic "
        "starting with 'orders.'; none: it refuses every topic. Never this deployment's own topics "
        "(starting with its prefix) nor Kafka's internal ones (starting with '__').",
    )
    consume_topics: Names = Field(
        default=(),
        description="Topics kafka.consumer may read, as produce_topics names them; none: it refuses "
        "every topic. Never this deployment's own topics nor Kafka's internal ones.",
    )

    sql_databases: dict[str, str] = Field(
        default_factory=dict,
        description="Databases sql.query may use, by name, as a JSON object of SQLAlchemy URLs: "
        '\'{"orders": "postgresql+psycopg://reader:secret@db:5432/orders", "local": '
        '"sqlite:////var/lib/app.db"}\'. A node names a database, never a URL: credentials and hosts '
        "stay in the worker's settings. None: it refuses every query.",
    )
    sql_max_rows: int = Field(
        default=10_000, ge=1, description="Rows sql.query returns at most; its input may only lower it."
    )
    sql_timeout: float = Field(
        default=30.0, gt=0, description="Seconds one sql.query may run; its input may only lower it."
    )

    @field_validator(
        "builtins",
        "file_roots",
        "http_allowed_hosts",
        "http_allowed_networks",
        "produce_topics",
        "consume_topics",
        mode="before",
    )
    @classmethod
    def _split(cls, value: Any) -> Any:
        return split_list(value) if isinstance(value, str) else value

    @field_validator("builtins")
    @classmethod
    def _known_builtins(cls, names: frozenset[str]) -> frozenset[str]:
        unknown = names - ALL_BUILTINS
        if unknown:
            raise ValueError(f"unknown built-ins {sorted(unknown)}; known: {', '.join(sorted(ALL_BUILTINS))}")
        return names

    @field_validator("file_roots")
    @classmethod
    def _absolute_roots(cls, roots: tuple[Path, ...]) -> tuple[Path, ...]:
        relative = [str(root) for root in roots if not root.is_absolute()]
        if relative:
            raise ValueError(f"file roots must be absolute paths: {relative}")
        return roots

    @field_validator("http_allowed_hosts")
    @classmethod
    def _plain_hosts(cls, hosts: tuple[str, ...]) -> tuple[str, ...]:
        normal = []
        for host in hosts:
            name = normal_host(host.removeprefix("*."))
            if not HOST_NAME.fullmatch(name) and not _is_ip(name):
                raise ValueError(f"{host!r} is not a host ('example.com', '*.example.com' or an IP)")
            normal.append(f"*.{name}" if host.startswith("*.") else name)
        return tuple(normal)

    @field_validator("produce_topics", "consume_topics")
    @classmethod
    def _topic_patterns(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            if "*" in pattern.removesuffix("*"):
                raise ValueError(f"topic pattern {pattern!r}: '*' may only end a pattern ('orders.*')")
        return patterns


def split_list(value: str) -> tuple[str, ...]:
    """The items of a comma-separated list setting ("" is none)."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


def normal_host(host: str) -> str:
    """``host`` as allow-lists compare it: an IP in its short form, a name lower case, no final dot."""
    if _is_ip(host):
        return str(ip_address(host))
    return host.lower().rstrip(".")


def _is_ip(host: str) -> bool:
    try:
        ip_address(host)
    except ValueError:
        return False
    return True
