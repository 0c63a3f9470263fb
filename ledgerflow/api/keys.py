"""API keys: hashed at rest in a keys file, looked up in constant time.

The keys file (``LEDGERFLOW_API_KEYS_FILE``) has one JSON object per line; blank lines and
lines starting with ``#`` are skipped::

    {"name": "ci", "sha256": "<64 hex digits>", "scopes": ["read", "write"], "namespaces": ["default"]}

``sha256`` is the SHA-256 of the key (the key itself is never stored): keys are 256 random
bits, so a fast hash is enough and a stolen file gives nothing to guess from. ``scopes`` are
``read``, ``write``, ``admin`` and ``metrics`` (``api.scopes``); ``namespaces`` are those the
key acts in (``["default"]`` when absent, ``["*"]`` for every one). ``ledgerflow api-key
create`` makes a key and its line. A malformed file stops the gateway at start, naming the line.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from ledgerflow import namespaces
from ledgerflow.api.scopes import DEFAULT_NAMESPACES, Principal, Scope

KEY_PREFIX = "lfk_"
"""Every generated key starts with it, so a leaked one is easy to recognise (secret scanners)."""

Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")]
NamespaceName = Annotated[str, StringConstraints(pattern=rf"^({namespaces.PATTERN}|\*)$")]


class KeysFileError(ValueError):
    """The keys file cannot be read or has a bad line."""


class ApiKeyEntry(BaseModel):
    """One line of the keys file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name = Field(description="Who holds the key (shown in logs, never the key).")
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] = Field(
        description="Lower-case hex SHA-256 of the key."
    )
    scopes: list[Scope] = Field(min_length=1, description="What the key may do.")
    namespaces: list[NamespaceName] = Field(
        default_factory=lambda: list(DEFAULT_NAMESPACES),
        min_length=1,
        description="Namespaces the key acts in ('*': every one).",
    )

    @field_validator("scopes")
    @classmethod
    def _unique(cls, value: list[Scope]) -> list[Scope]:
        return sorted(set(value))

    def principal(self) -> Principal:
        return Principal(self.name, frozenset(self.scopes), tuple(self.namespaces), kind="api-key")


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(
    name: str, scopes: Iterable[Scope], namespaces: Iterable[str] = DEFAULT_NAMESPACES
) -> tuple[str, ApiKeyEntry]:
    """A fresh random key and the keys-file entry that accepts it."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    entry = ApiKeyEntry(name=name, sha256=key_hash(key), scopes=list(scopes), namespaces=list(namespaces))
    return key, entry


def entry_line(entry: ApiKeyEntry) -> str:
    return json.dumps(entry.model_dump(mode="json"), separators=(", ", ": "))


class KeyRing:
    """The accepted keys."""

    def __init__(self, entries: Iterable[ApiKeyEntry]) -> None:
        self.entries = list(entries)
        names = [e.name for e in self.entries]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise KeysFileError(f"key names used twice: {', '.join(duplicated)}")
        if len({e.sha256 for e in self.entries}) != len(self.entries):
            raise KeysFileError("the same key hash appears twice")

    def __len__(self) -> int:
        return len(self.entries)

    def lookup(self, key: str) -> Principal | None:
        """The principal of ``key``, or ``None``; every entry is compared, in constant time."""
        digest = key_hash(key).encode()
        found = None
        for entry in self.entries:
            if hmac.compare_digest(digest, entry.sha256.encode()):
                found = entry
        return found.principal() if found else None


def load_keys(path: Path) -> KeyRing:
    """The keys in ``path``; raises ``KeysFileError`` naming the file and line of a problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KeysFileError(f"cannot read the API keys file {path}: {exc.strerror}") from exc
    entries = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            entries.append(ApiKeyEntry.model_validate_json(line))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'line'}: {e['msg']}" for e in exc.errors()
            )
            raise KeysFileError(f"{path}, line {number}: {problems}") from None
    try:
        return KeyRing(entries)
    except KeysFileError as exc:
        raise KeysFileError(f"{path}: {exc}") from None
