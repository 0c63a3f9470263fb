"""Claim checks on a real broker: a built-in's result too large for history goes to the claims
topic in chunks, the history keeps a reference, and the next built-in of the same workflow reads
it back whole; a reference of another workflow's, a tampered one or one whose chunks are gone
fails the node, not retried."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from ledgerflow.codec.aesgcm import AesGcmCodec
from ledgerflow.codec.base import CodecKeyNeeded
from ledgerflow.config import Settings
from ledgerflow.errors import ApplicationError
from ledgerflow.executors.claims import CLAIM, ClaimStore

pytestmark = pytest.mark.kafka

RECORDS = [{"sku": f"sku-{n:05d}", "qty": n, "note": "x" * 100} for n in range(4000)]


@pytest.fixture
def settings(kafka_bootstrap: str, topic_prefix: str) -> Settings:
    made = Settings(
        bootstrap=kafka_bootstrap, prefix=topic_prefix, max_record_bytes=100_000, max_payload_bytes=32_000
    )
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    topic = made.topic("claims")
    admin.create_topics([NewTopic(topic, made.partitions, 1)])[topic].result(30)
    return made


def raw_chunks(settings: Settings, ref: dict[str, Any]) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": settings.bootstrap, "group.id": "t"})
    claim = ref[CLAIM]
    consumer.assign([TopicPartition(claim["topic"], claim["partition"], claim["first"])])
    chunks = []
    while len(chunks) < claim["last"] - claim["first"] + 1:
        message = consumer.poll(10)
        assert message is not None and message.error() is None
        chunks.append(message.value())
    consumer.close()
    return chunks


def test_a_large_field_is_claimed_and_read_back_whole(settings: Settings) -> None:
    store = ClaimStore(settings, None)
    small = {"items": RECORDS[:3], "count": 3}
    assert store.fit(small, "wf-1") == small  # fits: as it is

    fitted = store.fit({"items": RECORDS, "count": len(RECORDS)}, "wf-1")
    assert fitted["count"] == len(RECORDS) and set(fitted["items"]) == {CLAIM}
    claim = fitted["items"][CLAIM]
    assert (
        claim["chunks"] > 1 and claim["bytes"] > settings.max_record_bytes
    )  # chunked under the record limit
    assert all(len(chunk) <= settings.max_record_bytes for chunk in raw_chunks(settings, fitted["items"]))

    rendered = {"items": fitted["items"], "compute": {"total": "item['qty']"}}  # as a template passes it on
    assert store.resolve(rendered, "wf-1") == {"items": RECORDS, "compute": {"total": "item['qty']"}}
    store.close()


def test_a_result_that_is_one_large_list_becomes_one_reference(settings: Settings) -> None:
    store = ClaimStore(settings, None)
    fitted = store.fit(RECORDS, "wf-2")
    assert set(fitted) == {CLAIM}
    assert store.resolve([fitted], "wf-2") == [RECORDS]


def test_references_of_another_workflow_or_tampered_ones_are_refused(settings: Settings) -> None:
    store = ClaimStore(settings, None)
    ref = store.fit({"items": RECORDS}, "wf-3")["items"]
    with pytest.raises(ApplicationError) as other:
        store.resolve({"items": ref}, "wf-someone-else")
    assert other.value.type == "ClaimUnavailable" and other.value.non_retryable
    assert "another workflow" in str(other.value)

    tampered = copy.deepcopy(ref)
    tampered[CLAIM]["sha256"] = "0" * 64
    with pytest.raises(ApplicationError, match="do not match"):
        store.resolve(tampered, "wf-3")
    missing = copy.deepcopy(ref)
    missing[CLAIM]["id"] = "f" * 32  # no chunk carries this id
    with pytest.raises(ApplicationError, match="chunks are gone"):
        store.resolve(missing, "wf-3")
    elsewhere = copy.deepcopy(ref)
    elsewhere[CLAIM]["topic"] = "someone.elses.topic"
    with pytest.raises(ApplicationError, match="not this deployment's claims"):
        store.resolve(elsewhere, "wf-3")
    with pytest.raises(ApplicationError, match="not a claim reference"):
        store.resolve({CLAIM: {"topic": settings.topic("claims")}}, "wf-3")


def test_forged_references_cost_nothing_and_data_with_a_claim_key_passes(settings: Settings) -> None:
    store = ClaimStore(settings, None)
    ref = store.fit({"items": RECORDS}, "wf-5")["items"]
    for forged in (
        {"chunks": 10**9, "bytes": 10**12},  # more than a claim may hold
        {"last": ref[CLAIM]["first"] + 10**9},  # a range to scan for ever
        {"chunks": ref[CLAIM]["bytes"]},  # more chunks than its bytes need
    ):
        started = time.monotonic()
        with pytest.raises(ApplicationError) as refused:
            store.resolve({CLAIM: {**ref[CLAIM], **forged}}, "wf-5")
        assert refused.value.type == "ClaimUnavailable" and time.monotonic() - started < 1, forged
    with pytest.raises(ApplicationError, match="more than 100 claim references"):
        store.resolve([ref] * 101, "wf-5")
    data = [{"$claim": "a field of a record", "n": 1}, {"$claim": 5}]
    assert store.resolve(data, "wf-5") == data  # not a reference's shape: data, as it is


def test_with_a_codec_the_chunks_are_encrypted(settings: Settings) -> None:
    codec = AesGcmCodec({"k1": b"k" * 32}, "k1")
    store = ClaimStore(settings, codec)
    ref = store.fit({"items": RECORDS}, "wf-4")["items"]
    assert b"sku-00001" not in b"".join(raw_chunks(settings, ref))
    assert store.resolve(ref, "wf-4") == RECORDS
    with pytest.raises(CodecKeyNeeded):  # without the key the chunks are not readable
        ClaimStore(settings, None).resolve(ref, "wf-4")
