"""The operators' dashboards and alert rules in the Helm chart: every expression parses as
PromQL, and every metric it names is one Ledgerflow's processes export (a renamed metric would
otherwise leave an empty panel or an alert that never fires)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client import REGISTRY, CollectorRegistry

from ledgerflow.api.middleware import RequestMetrics
from ledgerflow.api.routing import RoutingMetrics
from ledgerflow.engine import metrics
from tests.deploy.test_helm_chart import CHART, FULLNAME, NAMESPACE, helm

PROMETHEUS_OWN = {"up"}
"""Series Prometheus makes itself."""
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$namespace": NAMESPACE}


def exported_names() -> set[str]:
    """The series names the engine and gateway export (counters' ``_total``, histograms'
    ``_bucket``/``_sum``/``_count``)."""
    registries = [REGISTRY, CollectorRegistry(), CollectorRegistry()]
    RequestMetrics(registries[1])
    RoutingMetrics(registries[2])
    names = set()
    for registry in registries:
        for family in registry.collect():
            names |= {sample.name for sample in family.samples}
            if family.type == "counter":
                names.add(f"{family.name}_total")
            elif family.type == "histogram":
                names |= {f"{family.name}{suffix}" for suffix in ("_bucket", "_sum", "_count")}
            else:
                names.add(family.name)
    assert "ledgerflow_inbox_lag_records" in names and "workflow_execution_total" in names
    return names


def metric_names(node: Any) -> Iterator[str]:
    """Every metric an expression's tree selects."""
    if isinstance(node, promql_parser.VectorSelector):
        if node.name:
            yield node.name
        return
    for attribute in ("expr", "lhs", "rhs", "vector_selector", "param"):
        child = getattr(node, attribute, None)
        if child is not None:
            yield from metric_names(child)
    for arg in getattr(node, "args", None) or []:
        yield from metric_names(arg)


def checked(expr: str) -> set[str]:
    """The metrics ``expr`` names, once it parsed (ValueError naming the problem otherwise)."""
    return set(metric_names(promql_parser.parse(expr)))


def rendered(*values: str) -> list[dict[str, Any]]:
    out = helm("template", "lf", str(CHART), "-n", NAMESPACE, *[f"--set={v}" for v in values]).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def test_the_name_walker_finds_every_selector() -> None:
    names = checked(
        'sum(rate(a_total{x="1"}[5m])) / clamp_min(sum(rate(b_total[5m])), 1e-9) > 0.1 '
        "and deriv(sum(c)[10m:1m]) > 0 and histogram_quantile(0.99, sum by (le) (rate(d_bucket[5m]))) > 1"
    )
    assert names == {"a_total", "b_total", "c", "d_bucket"}
    with pytest.raises(ValueError, match="unclosed left parenthesis"):
        checked("sum(rate(a_total[5m])")


def test_alert_rules_parse_and_name_only_exported_metrics() -> None:
    documents = rendered("metrics.prometheusRule.enabled=true", "kafka.partitions=6")
    rules = [d for d in documents if d["kind"] == "PrometheusRule"]
    assert len(rules) == 1 and rules[0]["metadata"]["name"] == FULLNAME
    alerts = {r["alert"]: r for group in rules[0]["spec"]["groups"] for r in group["rules"]}
    wanted = {
        "LedgerflowEngineDown",
        "LedgerflowNoEngine",
        "LedgerflowPartitionWithoutOwner",
        "LedgerflowInboxLagGrowing",
        "LedgerflowFailureRate",
        "LedgerflowDeadLetters",
        "LedgerflowHistoryNearLimit",
    }
    assert wanted <= set(alerts)
    exported = exported_names() | PROMETHEUS_OWN
    for name, alert in alerts.items():
        names = checked(alert["expr"])
        assert names and names <= exported, f"{name} names {sorted(names - exported)}"
        # this release's engines only: two releases may share a namespace
        assert f'namespace="{NAMESPACE}", job=~"{FULLNAME}-engine.*"' in alert["expr"], name
        assert alert["labels"]["severity"] in ("critical", "warning", "info"), name
        assert alert["annotations"]["summary"], name
    unowned = alerts["LedgerflowPartitionWithoutOwner"]["expr"]
    assert unowned.endswith("< 6") and "or vector(0)" in unowned  # fires with no engine left at all
    assert not [d for d in rendered() if d["kind"] == "PrometheusRule"]  # off by default


def test_dashboards_parse_and_name_only_exported_metrics() -> None:
    documents = rendered("metrics.dashboards.enabled=true")
    maps = [
        d for d in documents if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboards")
    ]
    assert len(maps) == 1 and maps[0]["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboards = {name: json.loads(text) for name, text in maps[0]["data"].items()}
    assert set(dashboards) == {
        "ledgerflow-overview.json",
        "ledgerflow-executions.json",
        "ledgerflow-latency.json",
        "ledgerflow-failures.json",
    }
    exported = exported_names()
    for file, dashboard in dashboards.items():
        assert dashboard["uid"] == file.removesuffix(".json") and dashboard["panels"], file
        for panel in dashboard["panels"]:
            assert panel["targets"], (file, panel["title"])
            for target in panel["targets"]:
                expr = re.sub(r"\$\w+", lambda m: GRAFANA_VARIABLES[m.group(0)], target["expr"])
                names = checked(expr)
                assert names and names <= exported, (
                    f"{file}: {panel['title']} names {sorted(names - exported)}"
                )
    assert not [d for d in rendered() if d["metadata"]["name"].endswith("-dashboards")]  # off by default


def test_the_inbox_lag_gauge_shows_only_owned_partitions() -> None:
    lag = {0: 5, 3: 0}
    metrics.INBOX_LAG.source = lambda: lag
    try:
        samples = {s.labels["partition"]: s.value for f in metrics.INBOX_LAG.collect() for s in f.samples}
        assert samples == {"0": 5, "3": 0}
        del lag[0]  # the partition moved away: its series goes with it
        samples = {s.labels["partition"]: s.value for f in metrics.INBOX_LAG.collect() for s in f.samples}
        assert samples == {"3": 0}
    finally:
        metrics.INBOX_LAG.source = dict
