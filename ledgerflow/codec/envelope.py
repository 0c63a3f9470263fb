"""The JSON form of an encoded payload, and encoding/decoding of JSON values with an optional codec.

An encoded payload is the JSON object::

    {"_ledgerflow_codec": "aes256-gcm/1", "kid": "20261130-5f3a9c1e", "data": "<base64>"}

``_ledgerflow_codec`` names the codec and its format version, ``kid`` the key that encoded it
(absent for a codec without keys), ``data`` the codec's output in standard base64. For
``aes256-gcm/1`` that is the 12-byte nonce followed by the ciphertext and its 16-byte tag, with
``ledgerflow/aes256-gcm/1/<kid>`` as associated data. What is encoded is the payload's compact
JSON (UTF-8): one envelope per workflow input, result, signal payload, query argument or result,
activity argument, child input and failure's ``details``.

Every function takes ``codec=None`` for a component without keys: nothing is encoded then (no
envelope, no cost), and an envelope met on decoding raises ``CodecKeyNeeded`` rather than reach
code as if it were the value.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from pydantic_core import from_json, to_json

from ledgerflow.codec.base import CodecKeyNeeded, EncodedPayload, PayloadCodec, PayloadDecodeError
from ledgerflow.schemas.common import JSON, Failure

CODEC_FIELD = "_ledgerflow_codec"
"""The field that marks a JSON object as an encoded payload and names its codec."""


def is_encoded(value: JSON) -> bool:
    """True when ``value`` is an encoded payload's envelope."""
    return type(value) is dict and CODEC_FIELD in value


def encode(codec: PayloadCodec | None, value: JSON) -> JSON:
    """``value`` as an envelope made by ``codec``; ``value`` itself without a codec."""
    if codec is None:
        return value
    payload = codec.encode(to_json(value))
    envelope: dict[str, str] = {CODEC_FIELD: payload.codec}
    if payload.key_id is not None:
        envelope["kid"] = payload.key_id
    envelope["data"] = base64.b64encode(payload.data).decode("ascii")
    return envelope


def decode(codec: PayloadCodec | None, value: JSON) -> JSON:
    """The value an envelope holds; any other value as it is.

    Raises ``CodecKeyNeeded`` for an envelope without a codec, ``UnknownCodecKey`` for one whose
    key the codec lacks, ``PayloadDecodeError`` for one malformed or tampered with.
    """
    if type(value) is not dict or CODEC_FIELD not in value:  # is_encoded, inlined: every payload passes here
        return value
    payload = _parse(value)
    if codec is None:
        raise CodecKeyNeeded(payload.codec, payload.key_id)
    try:
        return from_json(codec.decode(payload))
    except ValueError as exc:
        raise PayloadDecodeError(f"a decoded payload is not JSON: {exc}") from None


def decode_tree(codec: PayloadCodec | None, value: JSON) -> JSON:
    """``value`` with every envelope in it decoded, however deep (for whole records and responses:
    a run's state, history events, lifecycle events)."""
    if type(value) is dict:
        if CODEC_FIELD in value:
            return decode(codec, value)
        return {key: decode_tree(codec, item) for key, item in value.items()}
    if type(value) is list:
        return [decode_tree(codec, item) for item in value]
    return value


def encode_failure(codec: PayloadCodec | None, failure: Failure) -> Failure:
    """``failure`` with its ``details`` and its causes' encoded (types, messages and stacks stay
    readable)."""
    if codec is None:
        return failure
    return _map_details(failure, lambda details: encode(codec, details) if details is not None else None)


def decode_failure(codec: PayloadCodec | None, failure: Failure) -> Failure:
    """``failure`` with its ``details`` and its causes' decoded."""
    return _map_details(failure, lambda details: decode(codec, details) if is_encoded(details) else details)


def _map_details(failure: Failure, change: Callable[[JSON], JSON]) -> Failure:
    cause = _map_details(failure.cause, change) if failure.cause is not None else None
    details = change(failure.details)
    if details is failure.details and cause is failure.cause:
        return failure
    return failure.model_copy(update={"details": details, "cause": cause})


def _parse(envelope: dict[str, Any]) -> EncodedPayload:
    name, key_id, data = envelope.get(CODEC_FIELD), envelope.get("kid"), envelope.get("data")
    if not isinstance(name, str) or not isinstance(data, str) or not isinstance(key_id, str | None):
        raise PayloadDecodeError(
            f"a malformed encoded payload: {CODEC_FIELD!r} and 'data' must be strings, 'kid' a string if set"
        )
    try:
        raw = base64.b64decode(data, validate=True)
    except binascii.Error:
        raise PayloadDecodeError("a malformed encoded payload: 'data' is not base64") from None
    return EncodedPayload(name, key_id, raw)
