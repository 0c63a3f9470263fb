"""Payload codecs: encryption at rest of workflow inputs, results, signals and activity arguments.

A codec turns a payload's bytes into other bytes and back (``PayloadCodec``); Ledgerflow ships
AES-256-GCM (``AesGcmCodec``) with keys read from the file the ``codec_keys_file`` setting names
(env ``LEDGERFLOW_CODEC_KEYS_FILE``; make one with ``ledgerflow codec keygen FILE``). An encoded
payload is still a JSON value, an envelope (see ``ledgerflow.codec.envelope``), so every record
stays JSON. Who encodes and who decodes: docs/payload-encryption.md.
"""

from __future__ import annotations

from ledgerflow.codec.aesgcm import AesGcmCodec
from ledgerflow.codec.base import (
    CodecError,
    CodecKeyNeeded,
    EncodedPayload,
    PayloadCodec,
    PayloadDecodeError,
    UnknownCodecKey,
)
from ledgerflow.codec.envelope import decode, decode_tree, encode, is_encoded
from ledgerflow.codec.keyfile import KeyFileError, load_codec

__all__ = [
    "AesGcmCodec",
    "CodecError",
    "CodecKeyNeeded",
    "EncodedPayload",
    "KeyFileError",
    "PayloadCodec",
    "PayloadDecodeError",
    "UnknownCodecKey",
    "decode",
    "decode_tree",
    "encode",
    "is_encoded",
    "load_codec",
]
