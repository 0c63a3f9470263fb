"""The codec key file: ``{"active": "<key id>", "keys": {"<key id>": "<base64 of 32 bytes>", ...}}``.

Named by the ``codec_keys_file`` setting (env ``LEDGERFLOW_CODEC_KEYS_FILE``: a file or a
mounted Secret, never argv); written mode 0600 by ``ledgerflow codec keygen`` and ``rotate``.
Errors name the file and the problem, never a key.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ledgerflow.codec.aesgcm import KEY_BYTES, AesGcmCodec
from ledgerflow.config import Settings
from ledgerflow.errors import LedgerflowError
from ledgerflow.secretfiles import write_private


class KeyFileError(LedgerflowError):
    """The codec key file cannot be read or is not a usable key file."""


def load_codec(settings: Settings) -> AesGcmCodec | None:
    """The codec of the ``codec_keys_file`` setting, or None when it is unset."""
    path = settings.codec_keys_file
    return read_key_file(path) if path is not None else None


def read_key_file(path: Path) -> AesGcmCodec:
    active, keys = _read(path)
    try:
        return AesGcmCodec(keys, active)
    except ValueError as exc:
        raise KeyFileError(f"codec key file {path}: {exc}") from None


def new_key_id() -> str:
    """A key id that sorts by creation date: ``YYYYMMDD-<8 hex digits>``."""
    return f"{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(4)}"


def write_new_key_file(path: Path) -> str:
    """Write a key file with one fresh active key to ``path`` (which must not exist); its id."""
    key_id = new_key_id()
    write_private(path, _dump(key_id, {key_id: secrets.token_bytes(KEY_BYTES)}))
    return key_id


def rotate_key_file(path: Path) -> str:
    """Add a fresh key to ``path`` and make it the active one (the others still decode); its id.

    The file is replaced whole (a 0600 temporary file renamed over it), never left half written.
    """
    _, keys = _read(path)
    key_id = new_key_id()
    keys[key_id] = secrets.token_bytes(KEY_BYTES)
    staging = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    write_private(staging, _dump(key_id, keys))
    os.replace(staging, path)
    return key_id


def _dump(active: str, keys: dict[str, bytes]) -> str:
    encoded = {key_id: base64.b64encode(key).decode("ascii") for key_id, key in keys.items()}
    return json.dumps({"active": active, "keys": encoded}, indent=2) + "\n"


def _read(path: Path) -> tuple[str, dict[str, bytes]]:
    try:
        document: Any = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KeyFileError(f"cannot read the codec key file {path}: {exc.strerror}") from None
    except ValueError:
        raise KeyFileError(f"the codec key file {path} is not JSON") from None
    if not isinstance(document, dict):
        raise KeyFileError(f"the codec key file {path} must hold a JSON object")
    active, encoded = document.get("active"), document.get("keys")
    if not isinstance(active, str) or not isinstance(encoded, dict) or not encoded:
        raise KeyFileError(f"the codec key file {path} needs 'active' (a key id) and 'keys' (id: base64 key)")
    keys: dict[str, bytes] = {}
    for key_id, text in encoded.items():
        try:
            keys[key_id] = base64.b64decode(text, validate=True)
        except (binascii.Error, TypeError):
            raise KeyFileError(f"codec key {key_id!r} in {path} is not base64") from None
    return active, keys
