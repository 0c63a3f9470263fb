"""The whole stack on a secured broker (``ledgerflow kafka up --secure``): TLS everywhere, SCRAM
users or client certificates, ACLs enforced by KRaft's StandardAuthorizer.

Each component runs as its own principal with exactly the grants of ``ledgerflow topics grant``
(ledgerflow/engine/kafka/acls.py), so these tests also prove that table is enough, and that it is not
more than it should be: a worker cannot write the changelog, a principal without grants cannot
read the inbox, a wrong password is refused.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from ledgerflow import Client, kafkaprops
from ledgerflow.config import Settings
from ledgerflow.engine.kafka import acls
from ledgerflow.engine.kafka.admin import ensure_queue_topics, ensure_topics
from ledgerflow.local.kafka import LocalKafka
from ledgerflow.local.processes import Cluster
from ledgerflow.samples.dags import FAN_OUT_FAN_IN
from ledgerflow.schemas import commands as c
from tests.fixtures import ACTS, FLOWS, ROOT, assert_invariants

pytestmark = [pytest.mark.kafka]

PRINCIPALS = {name: f"User:{name}" for name in ("engine", "worker", "gateway", "client")}


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    kafka = LocalKafka(tmp_path_factory.mktemp("secure") / "kafka", secure=True)
    kafka.up()
    try:
        yield kafka
    finally:
        kafka.down()


def _config(kafka: LocalKafka, user: str, mtls: bool) -> dict[str, str]:
    return {"LEDGERFLOW_KAFKA_CONFIG": str(kafka.client_properties(user, mtls=mtls))}


def _bootstrap(kafka: LocalKafka, mtls: bool) -> str:
    address = kafka.mtls_bootstrap if mtls else kafka.bootstrap
    assert address is not None
    return address


def _admin(kafka: LocalKafka, prefix: str) -> Settings:
    """Settings of the cluster's admin (a super user) under ``prefix``."""
    return Settings(
        bootstrap=_bootstrap(kafka, False), prefix=prefix, kafka_config=kafka.client_properties("admin")
    )


def _granted_prefix(kafka: LocalKafka, name: str) -> str:
    prefix = f"{name}-{uuid.uuid4().hex[:8]}."
    admin = Settings(
        bootstrap=_bootstrap(kafka, False), prefix=prefix, kafka_config=kafka.client_properties("admin")
    )
    assert acls.grant(admin, PRINCIPALS) > 0
    return prefix


@pytest.mark.parametrize("mtls", [False, True], ids=["sasl-ssl-scram", "mtls"])
def test_engine_worker_gateway_client_cli_and_ingress_on_a_secured_broker(
    secure_kafka: LocalKafka, tmp_path: Path, mtls: bool
) -> None:
    bootstrap = _bootstrap(secure_kafka, mtls)
    prefix = _granted_prefix(secure_kafka, "secure")
    cluster = Cluster(bootstrap, prefix, tmp_path, partitions=4, pythonpath=[ROOT])
    settings = Settings(
        bootstrap=bootstrap,
        prefix=prefix,
        partitions=4,
        kafka_config=secure_kafka.client_properties("client", mtls=mtls),
    )
    try:
        engine = cluster.engine([FLOWS], env=_config(secure_kafka, "engine", mtls))
        cluster.worker([ACTS], env=_config(secure_kafka, "worker", mtls))
        engine.wait_ready()
        gateway = cluster.gateway([ACTS], env=_config(secure_kafka, "gateway", mtls))
        gateway.wait_ready()
        with Client(settings=settings, engine_token=cluster.engine_token) as client:
            # the SDK Client
            handle = client.start_workflow("ThreeSteps", 1, id=f"sdk-{uuid.uuid4().hex[:6]}")
            assert handle.result(timeout=60) == 4
            assert_invariants(client, handle.workflow_id)

            # the gateway: register a DAG, execute it
            dag = {**FAN_OUT_FAN_IN, "id": f"dag-{uuid.uuid4().hex[:6]}"}
            with httpx.Client(base_url=gateway.url or "", headers=gateway.headers, timeout=10) as api:
                assert api.post("/api/v1/workflows", json=dag).status_code == 201
                run = f"gw-{uuid.uuid4().hex[:6]}"
                started = api.post(
                    f"/api/v1/workflows/{dag['id']}/execute", json={"workflowId": run, "input": {"count": 4}}
                )
                assert started.status_code == 202, started.text
            # squares of 0..3 and the even numbers among them: 14 + 2
            assert client.result(run, timeout=60)["total"] == {"sum": 16}

            # Kafka ingress: a start command written straight to the inbox
            ingress = f"raw-{uuid.uuid4().hex[:6]}"
            producer = Producer(
                {"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", **settings.kafka_properties}
            )
            command = c.StartWorkflow(
                workflow_id=ingress, workflow_type="ThreeSteps", input=b"5", run_id=str(uuid.uuid4())
            )
            producer.produce(
                settings.topic("inbox"),
                key=ingress.encode(),
                value=command.model_dump_json(by_alias=True).encode(),
                partition=settings.partition_of(ingress),
            )
            assert producer.flush(30) == 0
            assert client.result(ingress, timeout=60) == 8

        # the CLI, with the same settings file
        described = subprocess.run(
            [sys.executable, "-m", "ledgerflow.cli", "describe", ingress, "--bootstrap", bootstrap,
             "--prefix", prefix, "--partitions", "4",
             "--kafka-config", str(secure_kafka.client_properties("client", mtls=mtls))],
            capture_output=True, text=True, timeout=60, env=cluster._env(),
        )  # fmt: skip
        assert described.returncode == 0, described.stderr
        assert "COMPLETED" in described.stdout
    finally:
        cluster.stop_all()


def _delivery_error(kafka: LocalKafka, user: str, topic: str) -> KafkaError | None:
    props = kafkaprops.from_file(kafka.client_properties(user))
    producer = Producer(
        {"bootstrap.servers": _bootstrap(kafka, False), "message.timeout.ms": 20_000, **props}
    )
    errors: list[KafkaError | None] = []
    producer.produce(topic, key=b"k", value=b"forged", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(30)
    assert errors, "no delivery report"
    return errors[0]


def test_the_grants_hold_a_worker_out_of_the_changelog_and_strangers_out_of_the_inbox(
    secure_kafka: LocalKafka, tmp_path: Path
) -> None:
    prefix = _granted_prefix(secure_kafka, "acl")
    admin = Settings(
        bootstrap=_bootstrap(secure_kafka, False),
        prefix=prefix,
        kafka_config=secure_kafka.client_properties("admin"),
    )
    ensure_topics(admin)
    # the worker writes results to the inbox, and nothing to the changelog
    assert _delivery_error(secure_kafka, "worker", admin.topic("inbox")) is None
    refused = _delivery_error(secure_kafka, "worker", admin.topic("changelog"))
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    # the same deployment's topics under another prefix: no grants there for anyone
    other = Settings(
        bootstrap=admin.bootstrap,
        prefix=f"other-{prefix}",
        kafka_config=secure_kafka.client_properties("admin"),
    )
    ensure_topics(other)
    refused = _delivery_error(secure_kafka, "client", other.topic("inbox"))
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    # a principal with no grants there cannot read that inbox: not even its metadata, and
    # polling it yields nothing though it holds a record
    assert _delivery_error(secure_kafka, "admin", other.topic("inbox")) is None
    consumer = Consumer(
        {
            "bootstrap.servers": admin.bootstrap,
            "group.id": f"{prefix}reader",  # a group it may use: the topic is what is refused
            **kafkaprops.from_file(secure_kafka.client_properties("client")),
        }
    )
    topic = consumer.list_topics(other.topic("inbox"), timeout=10).topics[other.topic("inbox")]
    assert topic.error is not None and topic.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    consumer.assign([TopicPartition(other.topic("inbox"), p, 0) for p in range(other.partitions)])
    read = [m for m in consumer.consume(10, 5) if m.error() is None]
    consumer.close()
    assert read == []

    # a wrong password does not get in at all
    props = {**kafkaprops.from_file(secure_kafka.client_properties("client")), "sasl.password": "wrong"}
    errors: list[KafkaError] = []
    intruder = Producer({"bootstrap.servers": admin.bootstrap, "error_cb": errors.append, **props})
    deadline = time.monotonic() + 20
    while not errors and time.monotonic() < deadline:
        intruder.poll(0.5)  # serves error_cb
    assert errors and errors[0].code() == KafkaError._AUTHENTICATION, errors
    assert "SASL authentication error" in errors[0].str()


def test_a_queue_worker_principal_reads_its_queue_and_no_other(secure_kafka: LocalKafka) -> None:
    """``topics grant --worker '' --queue-worker payments=User:worker``: the worker principal
    gets the payments queue's topic and group, and no other queue's tasks."""
    prefix = f"queues-{uuid.uuid4().hex[:8]}."
    admin = _admin(secure_kafka, prefix)
    granted = subprocess.run(
        [sys.executable, "-m", "ledgerflow.cli", "topics", "grant", "--bootstrap", admin.bootstrap,
         "--prefix", prefix, "--worker", "", "--queue-worker", "payments=User:worker",
         "--kafka-config", str(secure_kafka.client_properties("admin"))],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert granted.returncode == 0, granted.stderr
    assert "queue payments=User:worker" in granted.stdout
    ensure_queue_topics(admin, ("payments", "reports"))
    for queue in ("payments", "reports"):
        assert _delivery_error(secure_kafka, "admin", admin.task_topic(queue)) is None
    worker = kafkaprops.from_file(secure_kafka.client_properties("worker"))

    def read(queue: str) -> tuple[KafkaError | None, int]:
        consumer = Consumer(
            {"bootstrap.servers": admin.bootstrap, "group.id": f"{prefix}workers.{queue}",
             "auto.offset.reset": "earliest", **worker}
        )  # fmt: skip
        topic = admin.task_topic(queue)
        error = consumer.list_topics(topic, timeout=10).topics[topic].error
        got = 0
        if error is None:
            consumer.subscribe([topic])
            deadline = time.monotonic() + 30
            while not got and time.monotonic() < deadline:
                got += len([m for m in consumer.consume(10, 1) if m.error() is None])
        consumer.close()
        return error, got

    assert read("payments") == (None, 1)
    refused, got = read("reports")
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED and got == 0


def test_a_namespace_producer_acts_in_its_namespace_only(secure_kafka: LocalKafka, tmp_path: Path) -> None:
    """``topics grant --client '' --namespace-producer acme=User:client``: the client principal
    may write acme's ingress topic and nothing else, so the broker, not the record, says which
    namespace its commands act in (ledgerflow/engine/ingress.py)."""
    prefix = f"tenants-{uuid.uuid4().hex[:8]}."
    admin = _admin(secure_kafka, prefix)
    cli = [sys.executable, "-m", "ledgerflow.cli", "topics"]
    common = ["--bootstrap", admin.bootstrap, "--prefix", prefix, "--partitions", "4",
              "--kafka-config", str(secure_kafka.client_properties("admin"))]  # fmt: skip
    granted = subprocess.run(
        [*cli, "grant", *common, "--client", "", "--namespace-producer", "acme=User:client"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert granted.returncode == 0, granted.stderr
    assert "namespace acme=User:client" in granted.stdout
    created = subprocess.run(
        [*cli, "create", *common, "--namespace", "acme", "--namespace", "globex"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert f"created {admin.ingress_topic('acme')}" in created.stdout

    cluster = Cluster(admin.bootstrap, prefix, tmp_path, partitions=4, pythonpath=[ROOT])
    try:
        engine = cluster.engine([FLOWS], env=_config(secure_kafka, "engine", False))
        cluster.worker([ACTS], env=_config(secure_kafka, "worker", False))
        engine.wait_ready()
        order = f"order-{uuid.uuid4().hex[:6]}"
        start = c.StartWorkflow(workflow_id=order, workflow_type="ThreeSteps", input=1)
        props = kafkaprops.from_file(secure_kafka.client_properties("client"))
        producer = Producer({"bootstrap.servers": admin.bootstrap, **props})
        producer.produce(
            admin.ingress_topic("acme"), key=order.encode(), value=start.model_dump_json().encode()
        )
        assert producer.flush(30) == 0
        reader = Settings(
            bootstrap=admin.bootstrap,
            prefix=prefix,
            partitions=4,
            kafka_config=secure_kafka.client_properties("admin"),
        )
        with Client(settings=reader, engine_token=cluster.engine_token, namespace="acme") as acme:
            assert acme.result(order, timeout=60) == 4
    finally:
        cluster.stop_all()
    # the inbox, where a record could name any namespace, and another namespace's topic: refused
    for topic in (admin.topic("inbox"), admin.ingress_topic("globex")):
        refused = _delivery_error(secure_kafka, "client", topic)
        assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, topic
