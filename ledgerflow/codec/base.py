"""The codec interface and its errors."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from ledgerflow.errors import LedgerflowError


@dataclass(frozen=True)
class EncodedPayload:
    """What a codec made of a payload's bytes: the codec's name, the key it used, the bytes."""

    codec: str
    """Names the codec and its format version, e.g. ``aes256-gcm/1``."""
    key_id: str | None
    """The key the payload was encoded with (None for a codec without keys)."""
    data: bytes


class PayloadCodec(ABC):
    """Turns a payload's bytes into other bytes and back; synchronous, safe to share between threads.

    ``decode(encode(b)) == b``. ``decode`` raises ``CodecError`` (or a subclass) for a payload it
    cannot take: another codec's, an unknown key's, or one that fails its integrity check.
    """

    @abstractmethod
    def encode(self, data: bytes) -> EncodedPayload: ...

    @abstractmethod
    def decode(self, payload: EncodedPayload) -> bytes: ...


class CodecError(LedgerflowError):
    """A payload could not be encoded or decoded."""


class CodecKeyNeeded(CodecError):
    """An encoded payload reached a component that has no codec: it is never passed on as it is."""

    def __init__(self, codec: str, key_id: str | None) -> None:
        key = f" with key {key_id!r}" if key_id else ""
        super().__init__(
            f"a payload encoded by codec {codec!r}{key} needs a codec key, and this component has "
            "none: set LEDGERFLOW_CODEC_KEYS_FILE (or pass codec=) to the deployment's key file"
        )
        self.codec = codec
        self.key_id = key_id


class UnknownCodecKey(CodecError):
    """A payload names a key this codec does not hold (retired, or another deployment's)."""

    def __init__(self, key_id: str, known: list[str]) -> None:
        super().__init__(
            f"a payload was encoded with codec key {key_id!r}, which is not in this component's "
            f"key file (keys here: {', '.join(known) or 'none'})"
        )
        self.key_id = key_id


class PayloadDecodeError(CodecError):
    """A payload is malformed, or fails its integrity check (tampered with, or the wrong key)."""
