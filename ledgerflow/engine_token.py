"""The shared token of the engine nodes' HTTP endpoints.

Engines hold it (``LEDGERFLOW_ENGINE_TOKEN_FILE``, a file or a mounted Secret, never argv)
and require it as ``Authorization: Bearer <token>`` on every route but ``/health``, ``/ready``
and ``/metrics``; the gateway and the Client send it. Make one with
``ledgerflow engine-token create FILE``.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from ledgerflow.secretfiles import write_private

MIN_LENGTH = 32
"""Shortest token accepted: ``engine-token create`` makes 43 characters (256 random bits)."""


class EngineTokenError(ValueError):
    """The token file cannot be read or holds no usable token."""


def read_token(path: Path) -> str:
    """The token in ``path`` (surrounding whitespace dropped); never echoes it in an error."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise EngineTokenError(f"cannot read the engine token file {path}: {exc.strerror}") from exc
    if len(token) < MIN_LENGTH or any(c.isspace() for c in token):
        raise EngineTokenError(
            f"the engine token in {path} must be one word of at least {MIN_LENGTH} characters"
        )
    return token


def token_from(path: Path | None) -> str | None:
    """The token of the ``engine_token_file`` setting, or ``None`` when it is unset."""
    return read_token(path) if path is not None else None


def bearer(token: str | None) -> dict[str, str]:
    """The request headers carrying ``token`` (none without one)."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def new_token() -> str:
    return secrets.token_urlsafe(32)


def write_new_token(path: Path) -> None:
    """Write a fresh token to ``path``, readable by its owner only; never overwrite one."""
    write_private(path, new_token() + "\n")
