"""AES-256-GCM, the codec Ledgerflow ships (``aes256-gcm/1``).

A random 96-bit nonce per payload; the associated data binds the format version and the key id,
so an envelope whose ``kid`` or version was changed fails its integrity check. Encodes with the
active key, decodes with any key it holds: add a key and make it active to rotate, keep the old
ones for as long as payloads they encoded are kept.

``cryptography`` is imported when a codec is made, not with this module: a process without
keys does not load OpenSSL's bindings (about 9 MiB).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from ledgerflow.codec.base import EncodedPayload, PayloadCodec, PayloadDecodeError, UnknownCodecKey

NAME = "aes256-gcm/1"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def associated_data(key_id: str) -> bytes:
    return f"ledgerflow/{NAME}/{key_id}".encode()


class AesGcmCodec(PayloadCodec):
    """AES-256-GCM with a set of keys by id, one of them active (the one that encodes)."""

    def __init__(self, keys: Mapping[str, bytes], active: str) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        for key_id, key in keys.items():
            if not KEY_ID_PATTERN.match(key_id):
                raise ValueError(f"codec key id {key_id!r} must match {KEY_ID_PATTERN.pattern}")
            if len(key) != KEY_BYTES:
                raise ValueError(f"codec key {key_id!r} must be {KEY_BYTES} bytes (AES-256), not {len(key)}")
        if active not in keys:
            raise ValueError(f"the active codec key {active!r} is not among the keys ({', '.join(keys)})")
        self.active = active
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self._associated = {key_id: associated_data(key_id) for key_id in keys}

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._ciphers)

    def __repr__(self) -> str:  # never the keys
        return f"AesGcmCodec(active={self.active!r}, key_ids={self.key_ids!r})"

    def encode(self, data: bytes) -> EncodedPayload:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.active].encrypt(nonce, data, self._associated[self.active])
        return EncodedPayload(NAME, self.active, nonce + sealed)

    def decode(self, payload: EncodedPayload) -> bytes:
        if payload.codec != NAME:
            raise PayloadDecodeError(f"a payload encoded by codec {payload.codec!r}; this codec is {NAME!r}")
        key_id = payload.key_id
        if key_id is None:
            raise PayloadDecodeError(f"an {NAME} payload without a key id ('kid')")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UnknownCodecKey(key_id, self.key_ids)
        data = payload.data
        if len(data) < NONCE_BYTES + TAG_BYTES:
            raise PayloadDecodeError(f"an {NAME} payload of {len(data)} bytes is too short")
        from cryptography.exceptions import InvalidTag

        try:
            return cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], self._associated[key_id])
        except InvalidTag:
            raise PayloadDecodeError(
                f"a payload encoded with codec key {key_id!r} failed its integrity check: it was "
                f"altered, or the key named {key_id!r} here is not the one that encoded it"
            ) from None
