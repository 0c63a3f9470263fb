"""How a deployment's Kafka client properties are read (ledgerflow.kafkaprops) and handed to
aiokafka (executors.aiokafka_config): pure logic, no broker."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from pydantic import ValidationError

from ledgerflow import kafkaclients as clients
from ledgerflow import kafkaprops
from ledgerflow.config import Settings
from ledgerflow.engine.kafka import acls
from ledgerflow.executors.aiokafka_config import ClientCredentialsTokenProvider, aiokafka_options
from ledgerflow.local.kafka.secure import SecureFiles


def test_environment_names_map_to_properties_both_ways() -> None:
    env = {
        "LEDGERFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "LEDGERFLOW_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "LEDGERFLOW_KAFKA_SSL_CA_LOCATION": "/ca.pem",
        "LEDGERFLOW_KAFKA_SSL__ENGINE__ID": "x",  # __ is a literal underscore
        "LEDGERFLOW_KAFKA_CONFIG": "/not/a/property",
        "LEDGERFLOW_BOOTSTRAP": "elsewhere:9092",
    }
    props = kafkaprops.from_env(env)
    assert props == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "ssl.ca.location": "/ca.pem",
        "ssl_engine_id": "x",
    }
    assert all(kafkaprops.env_name(name) in env for name in props)


def test_a_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    file = tmp_path / "client.properties"
    file.write_text("# comment\n\nsecurity.protocol = SSL\nsasl.username=file-user\n")
    props = kafkaprops.load(file, {"LEDGERFLOW_KAFKA_SASL_USERNAME": "env-user"})
    assert props == {"security.protocol": "SSL", "sasl.username": "env-user"}
    file.write_text("no equals sign here\n")
    with pytest.raises(kafkaprops.KafkaPropertiesError, match=r"client.properties:1: expected name=value"):
        kafkaprops.load(file, {})
    with pytest.raises(kafkaprops.KafkaPropertiesError, match="cannot read"):
        kafkaprops.load(tmp_path / "missing", {})


def test_properties_ledgerflow_owns_are_refused_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGERFLOW_KAFKA_ISOLATION_LEVEL", "read_uncommitted")
    monkeypatch.setenv("LEDGERFLOW_KAFKA_TRANSACTIONAL_ID", "mine")
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert "isolation.level (readers must not see aborted transactions)" in str(refused.value)
    assert "transactional.id" in str(refused.value)


def test_every_client_carries_the_properties_and_secrets_stay_out_of_reprs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LEDGERFLOW_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("LEDGERFLOW_KAFKA_SASL_PASSWORD", "hunter2")
    settings = Settings(bootstrap="b:9093")
    for config in (
        clients.producer_config(settings),
        clients.consumer_config(settings, "g"),
        clients.common_config(settings),
    ):
        assert config["security.protocol"] == "SASL_SSL" and config["sasl.password"] == "hunter2"
    assert clients.producer_config(settings)["acks"] == "all"  # ours still hold
    assert "hunter2" not in repr(settings) and "hunter2" not in settings.model_dump_json()
    assert kafkaprops.redacted(settings.kafka_properties)["sasl.password"] == "<redacted>"


def test_aiokafka_gets_the_same_security(tmp_path: Path) -> None:
    files = SecureFiles(tmp_path / "secure")
    files.ensure()
    scram = aiokafka_options(kafkaprops.from_file(files.properties("worker")))
    assert scram["security_protocol"] == "SASL_SSL"
    assert scram["sasl_mechanism"] == "SCRAM-SHA-512"
    assert scram["sasl_plain_username"] == "worker"
    assert scram["sasl_plain_password"] == files.passwords()["worker"]
    context = scram["ssl_context"]
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname

    mtls = aiokafka_options(kafkaprops.from_file(files.properties("worker", mtls=True)))
    assert mtls["security_protocol"] == "SSL" and "sasl_mechanism" not in mtls
    assert isinstance(mtls["ssl_context"], ssl.SSLContext)

    oauth = aiokafka_options(
        {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "OAUTHBEARER",
            "sasl.oauthbearer.method": "oidc",
            "sasl.oauthbearer.client.id": "worker",
            "sasl.oauthbearer.client.secret": "s",
            "sasl.oauthbearer.token.endpoint.url": "https://idp.example/token",
        }
    )
    assert isinstance(oauth["sasl_oauth_token_provider"], ClientCredentialsTokenProvider)
    with pytest.raises(kafkaprops.KafkaPropertiesError, match=r"sasl.oauthbearer.client.secret"):
        aiokafka_options(
            {
                "security.protocol": "SASL_SSL",
                "sasl.mechanism": "OAUTHBEARER",
                "sasl.oauthbearer.method": "oidc",
                "sasl.oauthbearer.client.id": "worker",
                "sasl.oauthbearer.token.endpoint.url": "https://idp.example/token",
            }
        )


def test_secure_material_is_private_to_its_owner(tmp_path: Path) -> None:
    files = SecureFiles(tmp_path / "secure")
    files.ensure()
    for path in files.folder.iterdir():
        assert path.stat().st_mode & 0o077 == 0, path
    before = files.passwords()
    files.ensure()  # a second call keeps what exists
    assert files.passwords() == before


def test_the_operations_guide_lists_the_grants_the_code_makes() -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    assert acls.table() in guide, (
        "docs/operations.md is stale: paste `python -m ledgerflow.engine.kafka.acls`"
    )


def test_kubernetes_service_links_are_not_read_as_properties() -> None:
    """kubelet adds these for a Service named ``ledgerflow-kafka`` in the pod's namespace."""
    env = {
        "LEDGERFLOW_KAFKA_SERVICE_HOST": "10.0.0.7",
        "LEDGERFLOW_KAFKA_SERVICE_PORT": "9092",
        "LEDGERFLOW_KAFKA_SERVICE_PORT_CLIENTS": "9092",
        "LEDGERFLOW_KAFKA_PORT": "tcp://10.0.0.7:9092",
        "LEDGERFLOW_KAFKA_PORT_9092_TCP": "tcp://10.0.0.7:9092",
        "LEDGERFLOW_KAFKA_PORT_9092_TCP_ADDR": "10.0.0.7",
        "LEDGERFLOW_KAFKA_PORT_9092_TCP_PROTO": "tcp",
        "LEDGERFLOW_KAFKA_PORT_9092_TCP_PORT": "9092",
        "LEDGERFLOW_KAFKA_SASL_MECHANISM": "PLAIN",
    }
    assert kafkaprops.from_env(env) == {"sasl.mechanism": "PLAIN"}


@pytest.mark.parametrize(
    "name", ["metadata.broker.list", "group.instance.id", "transaction.timeout.ms", "auto.offset.reset"]
)
def test_aliases_and_settings_that_would_undermine_the_engine_are_refused(name: str) -> None:
    with pytest.raises(kafkaprops.KafkaPropertiesError, match=name):
        kafkaprops.check({name: "x"})


def test_a_worker_refuses_security_properties_aiokafka_cannot_apply() -> None:
    with pytest.raises(kafkaprops.KafkaPropertiesError, match=r"ssl.crl.location"):
        aiokafka_options({"security.protocol": "SSL", "ssl.crl.location": "/crl.pem"})
