"""The deploy artefacts: the Helm chart (linted and rendered by helm) and docker-compose.yml.

helm is built from the Go module proxy by ``scripts/install-helm.sh`` (CI runs it first). Without
helm these tests fail, they do not skip: a chart nobody renders is a chart that breaks unseen.
The compose file cannot run here (no Docker engine), so it is checked as parsed YAML.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "ledgerflow"
COMPOSE = ROOT / "docker-compose.yml"
RELEASE = "lf"
NAMESPACE = "workflows"
FULLNAME = f"{RELEASE}-ledgerflow"
HEADLESS = f"{FULLNAME}-engine-headless"
ENGINE = f"{FULLNAME}-engine"
WORKER = f"{FULLNAME}-worker"
GATEWAY = f"{FULLNAME}-gateway"

Manifest = dict[str, Any]


@functools.cache
def _helm_path() -> str | None:
    """helm on PATH, else in Go's bin folder (where scripts/install-helm.sh puts it)."""
    found = shutil.which("helm")
    if found:
        return found
    candidates: list[Path] = []
    go = shutil.which("go")
    if go:
        env = subprocess.run(
            [go, "env", "GOBIN", "GOPATH"], capture_output=True, text=True, check=False, timeout=60
        ).stdout.splitlines()
        gobin, gopath = [*env, "", ""][:2]
        if gobin.strip():
            candidates.append(Path(gobin.strip()) / "helm")
        candidates += [Path(p) / "bin" / "helm" for p in gopath.strip().split(os.pathsep) if p]
    candidates.append(Path.home() / "go" / "bin" / "helm")
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run helm; fail the test (not skip) when it is not installed."""
    path = _helm_path()
    if path is None:
        pytest.fail(
            "helm not found on PATH or in $(go env GOPATH)/bin: run scripts/install-helm.sh",
            pytrace=False,
        )
    result = subprocess.run([path, *args], capture_output=True, text=True, check=False, timeout=120)
    if check and result.returncode != 0:
        output = result.stdout + result.stderr
        pytest.fail(f"helm {' '.join(args)} exited {result.returncode}:\n{output}")
    return result


def _set_args(values: dict[str, Any]) -> list[str]:
    """``--set`` for numbers, booleans, ``{a,b}`` lists; else ``--set-string``, commas escaped."""
    args: list[str] = []
    for key, value in values.items():
        if isinstance(value, str) and not value.startswith("{"):
            args += ["--set-string", f"{key}={value.replace(',', chr(92) + ',')}"]
        else:
            args += ["--set", f"{key}={str(value).lower() if isinstance(value, bool) else value}"]
    return args


@functools.cache
def _render_cached(values: tuple[tuple[str, Any], ...]) -> tuple[Manifest, ...]:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, *_set_args(dict(values))]
    out = helm(*args).stdout
    return tuple(doc for doc in yaml.safe_load_all(out) if doc)


def render(**values: Any) -> list[Manifest]:
    """``helm template`` with ``--set key=value`` (use ``__`` for dots in keys), parsed."""
    return list(_render_cached(tuple(sorted((k.replace("__", "."), v) for k, v in values.items()))))


def find(docs: list[Manifest], kind: str, name: str) -> Manifest:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    present = [d["metadata"]["name"] for d in docs if d["kind"] == kind]
    assert len(matches) == 1, f"expected one {kind} {name}, found {present}"
    return matches[0]


def kinds(docs: list[Manifest]) -> set[str]:
    return {d["kind"] for d in docs}


def pod_labels(workload: Manifest) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def container(workload: Manifest) -> Manifest:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(ctr: Manifest) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in ctr.get("env", [])}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


# ---- helm lint ----------------------------------------------------------------------------------


def test_chart_lints_strictly() -> None:
    result = helm("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in result.stdout


def test_chart_lints_with_every_optional_feature() -> None:
    helm(
        "lint",
        "--strict",
        str(CHART),
        "--set",
        "metrics.serviceMonitor.enabled=true,metrics.serviceMonitor.gatewayKeySecret.name=scrape-key",
        "--set",
        "auth.apiKeys.existingSecret=gateway-keys,auth.engineToken.existingSecret=engine-token",
        "--set",
        "auth.jwt.jwksUrl=https://idp.example/jwks,auth.jwt.issuer=https://idp.example/,auth.jwt.audience=lf",
        "--set",
        "gateway.podDisruptionBudget.enabled=true,engine.persistence.enabled=false",
        "--set-string",
        "app.workflowsModule=myapp.flows,app.activitiesModule=myapp.acts",
    )


def test_values_schema_rejects_a_zero_shard_count() -> None:
    result = helm("template", RELEASE, str(CHART), "--set", "kafka.partitions=0", check=False)
    assert result.returncode != 0
    assert "kafka.partitions" in result.stderr


# ---- engine -------------------------------------------------------------------------------------


def test_engine_statefulset_runs_partition_owners_with_probes_and_state_volume() -> None:
    docs = render()
    sts = find(docs, "StatefulSet", ENGINE)
    spec = sts["spec"]
    assert spec["serviceName"] == HEADLESS
    assert spec["replicas"] == 3
    ctr = container(sts)
    assert ctr["command"] == ["ledgerflow"]
    args = ctr["args"]
    assert args[0] == "engine"
    assert args[args.index("--data-dir") + 1] == "/data"
    assert args[args.index("--http-port") + 1] == "8081"
    # The default bind address is loopback: probes and the gateway need every interface.
    assert args[args.index("--http-host") + 1] == "0.0.0.0"
    assert "--workflows" not in args  # no workflows module set: DAG workflows only

    assert {p["name"]: p["containerPort"] for p in ctr["ports"]} == {"http": 8081}
    assert ctr["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert ctr["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert ctr["startupProbe"]["httpGet"]["path"] == "/health"

    claims = spec["volumeClaimTemplates"]
    assert [c["metadata"]["name"] for c in claims] == ["data"]
    assert claims[0]["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert {"name": "data", "mountPath": "/data"} in ctr["volumeMounts"]
    assert ctr["resources"]["requests"] and ctr["resources"]["limits"]


def test_engine_advertises_its_pod_dns_name_under_the_headless_service() -> None:
    ctr = container(find(render(), "StatefulSet", ENGINE))
    names = [e["name"] for e in ctr["env"]]
    env = env_of(ctr)
    assert env["LEDGERFLOW_BOOTSTRAP"] == "kafka:9092"
    assert env["LEDGERFLOW_PREFIX"] == "ledgerflow."
    assert env["LEDGERFLOW_PARTITIONS"] == "12"
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["LEDGERFLOW_ADVERTISED_URL"] == f"http://$(POD_NAME).{HEADLESS}.{NAMESPACE}.svc:8081"
    # $(VAR) expands only from variables defined earlier in the list.
    assert names.index("POD_NAME") < names.index("LEDGERFLOW_ADVERTISED_URL")


def test_engine_headless_service_publishes_not_ready_owners() -> None:
    docs = render()
    svc = find(docs, "Service", HEADLESS)
    sts = find(docs, "StatefulSet", ENGINE)
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["publishNotReadyAddresses"] is True
    assert svc["spec"]["ports"] == [{"name": "http", "port": 8081, "targetPort": "http", "protocol": "TCP"}]
    assert selects(svc["spec"]["selector"], pod_labels(sts))


def test_engine_workflows_module_is_passed_through_env() -> None:
    ctr = container(find(render(app__workflowsModule="myapp.flows"), "StatefulSet", ENGINE))
    args = ctr["args"]
    assert args[args.index("--workflows") + 1] == "$(WORKFLOWS_MODULE)"
    assert env_of(ctr)["WORKFLOWS_MODULE"] == "myapp.flows"


def test_engine_pod_disruption_budget_covers_the_engines_only() -> None:
    docs = render()
    pdb = find(docs, "PodDisruptionBudget", ENGINE)
    assert pdb["spec"]["maxUnavailable"] == 1
    selector = pdb["spec"]["selector"]["matchLabels"]
    assert selects(selector, pod_labels(find(docs, "StatefulSet", ENGINE)))
    for name in ("worker", "gateway"):
        assert not selects(selector, pod_labels(find(docs, "Deployment", f"{FULLNAME}-{name}")))


def test_engine_without_persistence_uses_an_empty_dir() -> None:
    sts = find(render(engine__persistence__enabled=False), "StatefulSet", ENGINE)
    assert "volumeClaimTemplates" not in sts["spec"]
    assert {"name": "data", "emptyDir": {}} in sts["spec"]["template"]["spec"]["volumes"]


# ---- worker and gateway -------------------------------------------------------------------------


def test_worker_deployment_serves_its_queue() -> None:
    docs = render(app__activitiesModule="myapp.acts", worker__queue="payments", worker__concurrency=7)
    ctr = container(find(docs, "Deployment", WORKER))
    assert ctr["args"] == [
        "worker",
        "--activities",
        "myapp.acts",
        "--queue",
        "payments",
        "--concurrency",
        "7",
    ]
    assert env_of(ctr)["LEDGERFLOW_BOOTSTRAP"] == "kafka:9092"


def test_gateway_deployment_and_service() -> None:
    docs = render()
    deploy = find(docs, "Deployment", GATEWAY)
    ctr = container(deploy)
    args = ctr["args"]
    assert args[0] == "api"
    assert args[args.index("--port") + 1] == "8080"
    assert ctr["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert ctr["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert "LEDGERFLOW_API_KEYS" not in env_of(ctr)
    assert "LEDGERFLOW_API_KEYS_FILE" not in env_of(ctr), "no keys configured: none mounted"

    svc = find(docs, "Service", GATEWAY)
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}]
    assert selects(svc["spec"]["selector"], pod_labels(deploy))
    assert not selects(svc["spec"]["selector"], pod_labels(find(docs, "StatefulSet", ENGINE)))


# ---- values -------------------------------------------------------------------------------------


def test_replicas_and_kafka_settings_follow_values() -> None:
    docs = render(
        engine__replicas=5,
        worker__replicas=4,
        gateway__replicas=1,
        kafka__bootstrap="b1:9092,b2:9092",
        kafka__prefix="prod.",
        kafka__partitions=24,
    )
    assert find(docs, "StatefulSet", ENGINE)["spec"]["replicas"] == 5
    assert find(docs, "Deployment", WORKER)["spec"]["replicas"] == 4
    assert find(docs, "Deployment", GATEWAY)["spec"]["replicas"] == 1
    workloads = [d for d in docs if d["kind"] in {"StatefulSet", "Deployment"}]
    assert len(workloads) == 3
    for workload in workloads:
        env = env_of(container(workload))
        assert env["LEDGERFLOW_BOOTSTRAP"] == "b1:9092,b2:9092"
        assert env["LEDGERFLOW_PREFIX"] == "prod."
        assert env["LEDGERFLOW_PARTITIONS"] == "24"


def test_every_container_is_non_root_with_resources() -> None:
    docs = render()
    for workload in (d for d in docs if d["kind"] in {"StatefulSet", "Deployment"}):
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        ctr = container(workload)
        assert ctr["securityContext"]["allowPrivilegeEscalation"] is False
        assert set(ctr["resources"]) == {"requests", "limits"}, workload["metadata"]["name"]


def test_service_monitors_only_behind_their_flags() -> None:
    assert "ServiceMonitor" not in kinds(render())
    docs = render(metrics__serviceMonitor__enabled=True)
    monitor = find(docs, "ServiceMonitor", f"{FULLNAME}-engine")
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "ServiceMonitor"] == [f"{FULLNAME}-engine"]
    assert monitor["spec"]["endpoints"][0]["port"] == "http"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert "authorization" not in monitor["spec"]["endpoints"][0], "engine /metrics is open to the scraper"
    assert monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "engine"

    docs = render(metrics__serviceMonitor__enabled=True, metrics__serviceMonitor__gatewayKeySecret__name="s")
    gateway = find(docs, "ServiceMonitor", f"{FULLNAME}-gateway")
    assert gateway["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "gateway"
    assert gateway["spec"]["endpoints"][0]["authorization"] == {
        "type": "Bearer",
        "credentials": {"name": "s", "key": "api-key"},
    }


# ---- auth ---------------------------------------------------------------------------------------


def _volume(workload: Manifest, name: str) -> Manifest:
    volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
    return volumes[name]


def test_the_engine_token_is_a_secret_mounted_into_engines_and_gateway_only() -> None:
    docs = render()
    secret = find(docs, "Secret", f"{FULLNAME}-engine-token")
    assert len(secret["data"]["token"]) >= 44, "48 random characters, base64"
    for kind, name in (("StatefulSet", ENGINE), ("Deployment", GATEWAY)):
        workload = find(docs, kind, name)
        ctr = container(workload)
        assert env_of(ctr)["LEDGERFLOW_ENGINE_TOKEN_FILE"] == "/etc/ledgerflow/engine-token/token"
        assert "LEDGERFLOW_INSECURE" not in env_of(ctr)
        mount = next(m for m in ctr["volumeMounts"] if m["name"] == "engine-token")
        assert mount == {
            "name": "engine-token",
            "mountPath": "/etc/ledgerflow/engine-token",
            "readOnly": True,
        }
        assert _volume(workload, "engine-token")["secret"]["secretName"] == f"{FULLNAME}-engine-token"
        assert "--engine-token" not in " ".join(ctr["args"]), "never on argv"
    worker = container(find(docs, "Deployment", WORKER))
    assert "LEDGERFLOW_ENGINE_TOKEN_FILE" not in env_of(worker)

    docs = render(auth__engineToken__existingSecret="mine", auth__engineToken__secretKey="t")
    assert not [d for d in docs if d["kind"] == "Secret"]
    volume = _volume(find(docs, "StatefulSet", ENGINE), "engine-token")["secret"]
    assert volume["secretName"] == "mine" and volume["items"] == [{"key": "t", "path": "token"}]


def test_no_pod_gets_service_link_variables() -> None:
    """kubelet's <SERVICE>_PORT... variables for a Service named ledgerflow-kafka would read as
    LEDGERFLOW_KAFKA_* client properties."""
    docs = render()
    for kind, name in (("StatefulSet", ENGINE), ("Deployment", WORKER), ("Deployment", GATEWAY)):
        assert find(docs, kind, name)["spec"]["template"]["spec"]["enableServiceLinks"] is False


def test_each_component_reads_its_own_kafka_client_secret() -> None:
    """TLS/SASL settings reach a component only from its own Secret: a file, never env values."""
    docs = render()
    for kind, name in (("StatefulSet", ENGINE), ("Deployment", WORKER), ("Deployment", GATEWAY)):
        assert "LEDGERFLOW_KAFKA_CONFIG" not in env_of(container(find(docs, kind, name)))

    docs = render(
        kafka__clientSecrets__engine="kafka-engine",
        kafka__clientSecrets__worker="kafka-worker",
        kafka__clientSecrets__gateway="kafka-gateway",
    )
    for kind, name, secret in (
        ("StatefulSet", ENGINE, "kafka-engine"),
        ("Deployment", WORKER, "kafka-worker"),
        ("Deployment", GATEWAY, "kafka-gateway"),
    ):
        workload = find(docs, kind, name)
        ctr = container(workload)
        assert env_of(ctr)["LEDGERFLOW_KAFKA_CONFIG"] == "/etc/ledgerflow/kafka/client.properties"
        mount = next(m for m in ctr["volumeMounts"] if m["name"] == "kafka-client")
        assert mount == {"name": "kafka-client", "mountPath": "/etc/ledgerflow/kafka", "readOnly": True}
        assert _volume(workload, "kafka-client")["secret"]["secretName"] == secret


def test_api_keys_file_comes_from_a_secret() -> None:
    sha = "a" * 64
    docs = render(
        **{
            "auth__apiKeys__entries[0]__name": "ci",
            "auth__apiKeys__entries[0]__sha256": sha,
            "auth__apiKeys__entries[0]__scopes": "{read,write}",
        }
    )
    secret = find(docs, "Secret", f"{FULLNAME}-api-keys")
    lines = secret["stringData"]["api-keys.jsonl"].splitlines()
    assert [json.loads(line) for line in lines if line.strip()] == [
        {"name": "ci", "sha256": sha, "scopes": ["read", "write"], "namespaces": ["default"]}
    ]
    deploy = find(docs, "Deployment", GATEWAY)
    assert env_of(container(deploy))["LEDGERFLOW_API_KEYS_FILE"] == "/etc/ledgerflow/api-keys/api-keys.jsonl"
    assert _volume(deploy, "api-keys")["secret"]["secretName"] == f"{FULLNAME}-api-keys"
    assert "checksum/api-keys" in deploy["spec"]["template"]["metadata"]["annotations"]

    docs = render(auth__apiKeys__existingSecret="mine", auth__apiKeys__secretKey="keys")
    assert f"{FULLNAME}-api-keys" not in [d["metadata"]["name"] for d in docs if d["kind"] == "Secret"]
    volume = _volume(find(docs, "Deployment", GATEWAY), "api-keys")["secret"]
    assert volume["secretName"] == "mine" and volume["items"] == [{"key": "keys", "path": "api-keys.jsonl"}]


def test_plain_api_keys_values_are_refused() -> None:
    result = helm("template", RELEASE, str(CHART), "--set", "apiKeys.enabled=true", check=False)
    assert result.returncode != 0 and "apiKeys" in result.stderr


def test_jwt_settings_reach_the_gateway() -> None:
    docs = render(
        auth__jwt__jwksUrl="https://idp.example/jwks",
        auth__jwt__issuer="https://idp.example/",
        auth__jwt__audience="lf",
    )
    env = env_of(container(find(docs, "Deployment", GATEWAY)))
    assert env["LEDGERFLOW_JWT_JWKS_URL"] == "https://idp.example/jwks"
    assert env["LEDGERFLOW_JWT_ISSUER"] == "https://idp.example/" and env["LEDGERFLOW_JWT_AUDIENCE"] == "lf"
    assert env["LEDGERFLOW_JWT_ALGORITHMS"] == "RS256"
    missing = helm("template", RELEASE, str(CHART), "--set", "auth.jwt.jwksUrl=https://idp/jwks", check=False)
    assert missing.returncode != 0 and "auth.jwt.issuer" in missing.stderr
    refused = helm("template", RELEASE, str(CHART), "--set", "auth.jwt.algorithms={HS256}", check=False)
    assert refused.returncode != 0


def test_insecure_is_an_explicit_value() -> None:
    docs = render(auth__insecure=True)
    for kind, name in (("StatefulSet", ENGINE), ("Deployment", GATEWAY)):
        assert env_of(container(find(docs, kind, name)))["LEDGERFLOW_INSECURE"] == "true"


def test_network_policy_lets_only_the_gateway_engines_and_scraper_reach_the_engines() -> None:
    docs = render()
    policy = find(docs, "NetworkPolicy", ENGINE)
    assert selects(
        policy["spec"]["podSelector"]["matchLabels"], pod_labels(find(docs, "StatefulSet", ENGINE))
    )
    [rule] = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    peers = [peer["podSelector"]["matchLabels"] for peer in rule["from"]]
    assert selects(peers[0], pod_labels(find(docs, "Deployment", GATEWAY)))
    assert selects(peers[1], pod_labels(find(docs, "StatefulSet", ENGINE)))
    assert peers[2] == {"app.kubernetes.io/name": "prometheus"}
    assert not any(selects(p, pod_labels(find(docs, "Deployment", WORKER))) for p in peers)
    workers = find(docs, "NetworkPolicy", WORKER)
    assert workers["spec"]["policyTypes"] == ["Ingress"] and "ingress" not in workers["spec"]

    docs = render(
        networkPolicy__scraper__namespaceLabels__team="monitoring",
        networkPolicy__scraper__podLabels__app="prom",
    )
    scraper = find(docs, "NetworkPolicy", ENGINE)["spec"]["ingress"][0]["from"][2]
    assert scraper["namespaceSelector"] == {"matchLabels": {"team": "monitoring"}}
    assert "NetworkPolicy" not in kinds(render(networkPolicy__enabled=False))


# ---- docker compose -----------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(doc, dict)
    return doc


def _env(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return dict(env)


def _uses_project_image(service: dict[str, Any]) -> bool:
    return "build" in service or str(service.get("image", "")).startswith("ledgerflow")


def test_compose_has_kafka_topics_and_the_three_processes() -> None:
    services = _compose()["services"]
    assert set(services) >= {"kafka", "topics", "engine", "worker", "gateway"}
    for name in ("topics", "engine", "worker", "gateway"):
        assert _uses_project_image(services[name]), name
        assert services[name]["build"]["dockerfile"] == "Dockerfile"
    assert services["topics"]["command"][:2] == ["topics", "create"]
    assert services["topics"]["restart"] == "no"
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    for name in ("engine", "worker", "gateway"):
        condition = services[name]["depends_on"]["topics"]["condition"]
        assert condition == "service_completed_successfully", name
    assert services["gateway"]["ports"] == ["127.0.0.1:8080:8080"]
    assert services["gateway"]["command"][0] == "api"
    assert services["worker"]["command"][0] == "worker"
    assert "ledgerflow engine" in " ".join(services["engine"]["command"])
    # Scalable with --scale engine=N: no fixed container name, no host port.
    assert "container_name" not in services["engine"]
    assert "ports" not in services["engine"]


def test_compose_kafka_is_single_node_kraft() -> None:
    kafka = _compose()["services"]["kafka"]
    assert kafka["image"] == "apache/kafka:4.1.1"
    env = _env(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert int(env[key]) == 1, key
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert "healthcheck" in kafka


def test_compose_publishes_nothing_beyond_this_host_and_the_gateway_needs_keys() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)
    gateway, engine = _env(services["gateway"]), _env(services["engine"])
    assert gateway["LEDGERFLOW_API_KEYS_FILE"] == "/run/ledgerflow-keys/api-keys.jsonl"
    assert gateway["LEDGERFLOW_ENGINE_TOKEN_FILE"] == engine["LEDGERFLOW_ENGINE_TOKEN_FILE"]
    assert "--insecure" not in " ".join(map(str, services["gateway"]["command"]))
    assert all("LEDGERFLOW_INSECURE" not in _env(s) for s in services.values())
    made = " ".join(services["secrets"]["command"])
    assert "ledgerflow engine-token create /run/ledgerflow/engine-token" in made
    for name in ("engine", "gateway"):
        assert services[name]["depends_on"]["secrets"]["condition"] == "service_completed_successfully"


def test_every_compose_service_on_the_image_sets_the_bootstrap() -> None:
    services = _compose()["services"]
    users = {name: s for name, s in services.items() if _uses_project_image(s)}
    assert users
    for name, service in users.items():
        env = _env(service)
        assert env.get("LEDGERFLOW_BOOTSTRAP") == "kafka:9092", name
        assert "LEDGERFLOW_PARTITIONS" in env, name


def test_dockerfile_runs_ledgerflow_as_non_root() -> None:
    lines = [ln.strip() for ln in (ROOT / "Dockerfile").read_text().splitlines()]
    assert "FROM python:3.11-slim" in lines
    users = [ln.split()[1] for ln in lines if ln.startswith("USER ")]
    assert users
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert 'ENTRYPOINT ["ledgerflow"]' in lines
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv"} <= set(ignored)


def test_the_codec_key_file_is_a_secret_mounted_into_engines_workers_and_gateway() -> None:
    for kind, name in (("StatefulSet", ENGINE), ("Deployment", WORKER), ("Deployment", GATEWAY)):
        assert "LEDGERFLOW_CODEC_KEYS_FILE" not in env_of(container(find(render(), kind, name)))
    docs = render(auth__codec__existingSecret="codec-keys", auth__codec__secretKey="k")
    for kind, name in (("StatefulSet", ENGINE), ("Deployment", WORKER), ("Deployment", GATEWAY)):
        workload = find(docs, kind, name)
        ctr = container(workload)
        assert env_of(ctr)["LEDGERFLOW_CODEC_KEYS_FILE"] == "/etc/ledgerflow/codec/keys.json"
        mount = next(m for m in ctr["volumeMounts"] if m["name"] == "codec-keys")
        assert mount == {"name": "codec-keys", "mountPath": "/etc/ledgerflow/codec", "readOnly": True}
        volume = _volume(workload, "codec-keys")["secret"]
        assert volume["secretName"] == "codec-keys" and volume["items"] == [{"key": "k", "path": "keys.json"}]
