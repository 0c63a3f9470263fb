"""Topic provisioning: the deployment's topics, and a loud refusal to mis-shard."""

from __future__ import annotations

import subprocess
import sys

import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from ledgerflow.config import Settings
from ledgerflow.engine.kafka.admin import ensure_topics, topic_specs
from ledgerflow.errors import TopicLayoutError
from ledgerflow.kafkaclients import RECORD_FRAMING

pytestmark = pytest.mark.kafka


def test_topics_are_created_with_the_shard_count_and_a_compacted_changelog(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = Settings(bootstrap=kafka_bootstrap, prefix=topic_prefix, partitions=6)
    created = ensure_topics(settings, ("default", "gpu"))
    assert set(created) == {spec.name for spec in topic_specs(settings, ("default", "gpu"))}
    assert ensure_topics(settings, ("default", "gpu")) == []  # idempotent
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    topics = admin.list_topics(timeout=10).topics
    for name in ("inbox", "changelog", "events", "tasks.gpu"):
        assert len(topics[f"{topic_prefix}{name}"].partitions) == 6
    resource = ConfigResource(ConfigResource.Type.TOPIC, f"{topic_prefix}changelog")
    config = admin.describe_configs([resource])[resource].result(10)
    assert config["cleanup.policy"].value == "compact"


def test_another_partition_count_fails_loudly_with_both_numbers(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    ensure_topics(Settings(bootstrap=kafka_bootstrap, prefix=topic_prefix, partitions=4))
    with pytest.raises(TopicLayoutError) as info:
        ensure_topics(Settings(bootstrap=kafka_bootstrap, prefix=topic_prefix, partitions=8))
    assert "4 partitions" in str(info.value) and "configured for 8" in str(info.value)
    # the CLI and the engine refuse the same way, with a one-line error
    result = subprocess.run(
        [sys.executable, "-m", "ledgerflow.cli", "topics", "create", "--bootstrap", kafka_bootstrap,
         "--prefix", topic_prefix, "--partitions", "8"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "has 4 partitions but this deployment is configured for 8" in result.stderr


def test_a_topic_that_would_refuse_ledgerflows_records_fails_the_start_by_name(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = Settings(bootstrap=kafka_bootstrap, prefix=topic_prefix, partitions=2)
    ensure_topics(settings)
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    inbox = ConfigResource(ConfigResource.Type.TOPIC, f"{topic_prefix}inbox")
    created = admin.describe_configs([inbox])[inbox].result(10)["max.message.bytes"].value
    assert int(created) >= settings.max_record_bytes + RECORD_FRAMING
    small = ConfigResource(
        ConfigResource.Type.TOPIC,
        f"{topic_prefix}inbox",
        incremental_configs=[
            ConfigEntry("max.message.bytes", "500000", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    admin.incremental_alter_configs([small])[small].result(10)
    with pytest.raises(TopicLayoutError) as info:
        ensure_topics(settings)
    message = str(info.value)
    assert f"topic '{topic_prefix}inbox' accepts records of at most 500,000 bytes" in message
    assert "LEDGERFLOW_MAX_RECORD_BYTES" in message
    ensure_topics(
        Settings(
            bootstrap=kafka_bootstrap,
            prefix=topic_prefix,
            partitions=2,
            max_record_bytes=400_000,
            max_payload_bytes=100_000,
        )
    )
