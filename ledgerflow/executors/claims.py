"""Claim checks: a built-in's result too large for a run's history goes to Kafka, and the
history keeps a reference to it.

A node that moves many records (a ``kafka.consumer`` batch, a ``sql.query``, a ``file.csv``)
can return more than ``max_payload_bytes``. Its worker then writes the largest fields of the
result (or the whole result) as chunks to the deployment's ``claims`` topic and puts in their
place a reference, ``{"$claim": {...}}``: where the chunks are, how many bytes they hold and
their SHA-256. Templates pass the reference along like any value
(``"{{ nodes.read.output.items }}"``), and the worker of the next built-in reads the chunks back
before the node runs, so it sees the records themselves.

A claim belongs to its workflow: its chunks are keyed by the workflow id, and a reference is
read back only for a node of that workflow (a reference copied into another run's input is
refused). The chunks are encrypted with the payload codec when one is configured. They live as
long as the topic keeps them (7 days by default, ``retention.ms`` of ``<prefix>claims``); a
reference older than that fails its node with ``ClaimUnavailable``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from typing import Any

from confluent_kafka import Producer, TopicPartition
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import to_json

from ledgerflow import kafkaclients
from ledgerflow.codec.base import PayloadCodec
from ledgerflow.codec.envelope import decode, encode
from ledgerflow.config import Settings
from ledgerflow.errors import ApplicationError
from ledgerflow.schemas.events import EVENT_ENVELOPE_BYTES

CLAIM = "$claim"
"""The one key of a reference."""
HEADER = "ledgerflow-claim"
UNAVAILABLE = "ClaimUnavailable"
TOO_LARGE = "ClaimTooLarge"
READ_TIMEOUT = 30.0
"""Seconds to write one claim, or to read every reference of one input back."""
MAX_CLAIM_BYTES = 64 * 1024 * 1024
"""The largest value a claim holds (a larger result fails its node, not retried): what a worker
reads back whole into memory."""
MAX_REFERENCES = 100
"""References one input may hold."""
MAX_SPAN = 1000
"""Records of other claims a reference's range may hold beside its own chunks (workers writing to
one partition at once interleave theirs)."""


class ClaimRef(BaseModel):
    """Where a claim's chunks are: records ``first`` to ``last`` of one partition of the claims
    topic, those with header ``id``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str
    partition: int = Field(ge=0)
    first: int = Field(ge=0)
    last: int = Field(ge=0)
    chunks: int = Field(ge=1)
    bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    id: str = Field(pattern=r"^[0-9a-f]{32}$")

    @model_validator(mode="after")
    def _consistent(self) -> ClaimRef:
        if self.bytes > MAX_CLAIM_BYTES:
            raise ValueError(f"a claim holds at most {MAX_CLAIM_BYTES} bytes")
        if not self.chunks <= self.last - self.first + 1 <= self.chunks + MAX_SPAN:
            raise ValueError("its range does not fit its chunks")
        if self.chunks > self.bytes // 1024 + 1:
            raise ValueError("more chunks than its bytes need")
        return self


def is_reference(value: Any) -> bool:
    """Whether ``value`` has a reference's shape: a dict whose one key is ``$claim``, holding a
    dict (any other value is data, passed on as it is)."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(CLAIM), dict)


def _size(value: Any) -> int:
    return len(to_json(value))


class ClaimStore:
    """Writes results too large for history to the claims topic, and reads references back."""

    def __init__(self, settings: Settings, codec: PayloadCodec | None) -> None:
        self.settings = settings
        self.codec = codec
        self.topic = settings.topic("claims")
        self.chunk_bytes = max(1024, settings.max_record_bytes // 2)
        self.room = (settings.max_payload_bytes - EVENT_ENVELOPE_BYTES) // 2
        """A result larger than this is claim-checked: half of what history takes, so a codec's
        envelope (base64 of the ciphertext) still fits."""
        self._producer: Producer | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ results
    def too_large(self, result: Any) -> bool:
        """Whether ``result`` needs a claim to fit history."""
        return _size(result) > self.room

    def fit(self, result: Any, workflow_id: str) -> Any:
        """``result`` itself when it fits history; else with its largest fields (or all of it)
        replaced by references."""
        if not self.too_large(result):
            return result
        if isinstance(result, dict):
            fitted = dict(result)
            for name in sorted(fitted, key=lambda field: -_size(fitted[field])):
                if _size(fitted) <= self.room:
                    return fitted
                fitted[name] = self.put(fitted[name], workflow_id)
            if _size(fitted) <= self.room:
                return fitted
        return self.put(result, workflow_id)

    def put(self, value: Any, workflow_id: str) -> dict[str, Any]:
        """Write ``value`` as chunks keyed by ``workflow_id``; its reference."""
        data = to_json(encode(self.codec, value))
        if len(data) > MAX_CLAIM_BYTES:
            raise ApplicationError(
                f"a result of {len(data):,} bytes: a claim holds at most {MAX_CLAIM_BYTES:,}",
                type=TOO_LARGE,
                non_retryable=True,
            )
        claim_id = uuid.uuid4().hex
        partition = self.settings.partition_of(workflow_id)
        pieces = [data[i : i + self.chunk_bytes] for i in range(0, len(data), self.chunk_bytes)] or [b""]
        offsets: list[int] = []
        errors: list[str] = []

        def delivered(error: Any, message: Any) -> None:
            if error is not None:
                errors.append(str(error))
            else:
                offsets.append(int(message.offset()))

        producer = self._writer()
        for index, piece in enumerate(pieces):
            producer.produce(
                self.topic,
                value=piece,
                key=workflow_id.encode(),
                partition=partition,
                headers=[(HEADER, f"{claim_id}:{index}".encode())],
                on_delivery=delivered,
            )
        # this claim's deliveries only (other threads' claims share the producer)
        deadline = time.monotonic() + READ_TIMEOUT
        while len(offsets) + len(errors) < len(pieces) and time.monotonic() < deadline:
            producer.poll(0.05)
        if errors or len(offsets) != len(pieces):
            why = errors or "timed out"
            raise ApplicationError(f"the claim check of a large result was not written: {why}")
        ref = ClaimRef(
            topic=self.topic,
            partition=partition,
            first=min(offsets),
            last=max(offsets),
            chunks=len(pieces),
            bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            id=claim_id,
        )
        return {CLAIM: ref.model_dump()}

    def _writer(self) -> Producer:
        with self._lock:
            if self._producer is None:
                self._producer = kafkaclients.plain_producer(self.settings, **{"linger.ms": 5})
            return self._producer

    # ------------------------------------------------------------------- inputs
    def holds_reference(self, value: Any) -> bool:
        """Whether ``value`` holds a reference anywhere."""
        return _references(value, 1) > 0

    def resolve(self, value: Any, workflow_id: str) -> Any:
        """``value`` with each reference in it replaced by what it refers to (at most
        ``MAX_REFERENCES``, all read within ``READ_TIMEOUT``)."""
        found = _references(value, MAX_REFERENCES + 1)
        if not found:
            return value
        if found > MAX_REFERENCES:
            raise _unavailable(f"an input holds more than {MAX_REFERENCES} claim references")
        return self._resolved(value, workflow_id, time.monotonic() + READ_TIMEOUT)

    def _resolved(self, value: Any, workflow_id: str, deadline: float) -> Any:
        if is_reference(value):
            return self.get(value, workflow_id, deadline)
        if isinstance(value, dict):
            return {key: self._resolved(item, workflow_id, deadline) for key, item in value.items()}
        if isinstance(value, list):
            return [self._resolved(item, workflow_id, deadline) for item in value]
        return value

    def get(self, reference: dict[str, Any], workflow_id: str, deadline: float | None = None) -> Any:
        """What ``reference`` refers to; ``ClaimUnavailable`` (not retried) when it is not a
        reference of this workflow's, or its chunks are gone or do not match."""
        try:
            ref = ClaimRef.model_validate(reference[CLAIM])
        except ValidationError as exc:
            problems = "; ".join(error["msg"] for error in exc.errors())
            raise _unavailable(f"not a claim reference: {problems}") from None
        if ref.topic != self.topic:
            raise _unavailable(f"the reference names topic {ref.topic!r}, not this deployment's claims")
        chunks = self._chunks(ref, workflow_id, deadline or time.monotonic() + READ_TIMEOUT)
        data = b"".join(chunks[index] for index in range(ref.chunks))
        if len(data) != ref.bytes or hashlib.sha256(data).hexdigest() != ref.sha256:
            raise _unavailable(f"claim {ref.id}: its chunks do not match the reference")
        return decode(self.codec, json.loads(data))

    def _chunks(self, ref: ClaimRef, workflow_id: str, deadline: float) -> dict[int, bytes]:
        consumer = kafkaclients.consumer(self.settings, None)
        chunks: dict[int, bytes] = {}
        try:
            consumer.assign([TopicPartition(ref.topic, ref.partition, ref.first)])
            position = ref.first
            while position <= ref.last and len(chunks) < ref.chunks:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ApplicationError(f"claim {ref.id}: not read within {READ_TIMEOUT} s")
                for message in consumer.consume(100, min(left, 1.0)):
                    if message.error() is not None:
                        raise ApplicationError(f"claim {ref.id}: {message.error()}")
                    offset = int(message.offset() or 0)
                    if not chunks and offset > ref.first and position == ref.first:
                        raise _unavailable(f"claim {ref.id}: its first chunk is gone (the topic's retention)")
                    position = offset + 1
                    if offset > ref.last:
                        break
                    claim_id, _, index = _text(dict(message.headers() or []).get(HEADER)).partition(":")
                    if claim_id != ref.id or not index.isdigit() or int(index) >= ref.chunks:
                        continue
                    if _text(message.key()) != workflow_id:
                        raise _unavailable(f"claim {ref.id} belongs to another workflow")
                    chunks[int(index)] = message.value() or b""
        finally:
            consumer.close()
        if len(chunks) != ref.chunks or set(chunks) != set(range(ref.chunks)):
            raise _unavailable(f"claim {ref.id}: {ref.chunks - len(chunks)} of its chunks are gone")
        return chunks

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.flush(5)


def _references(value: Any, enough: int) -> int:
    """References in ``value``, counted up to ``enough``."""
    if is_reference(value):
        return 1
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list | tuple) else ()
    found = 0
    for item in items:
        found += _references(item, enough - found)
        if found >= enough:
            break
    return found


def _text(raw: str | bytes | None) -> str:
    if isinstance(raw, bytes):
        return raw.decode(errors="replace")
    return raw or ""


def _unavailable(message: str) -> ApplicationError:
    return ApplicationError(message, type=UNAVAILABLE, non_retryable=True)
