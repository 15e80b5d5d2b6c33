"""The Prometheus and Grafana files in deploy/ name only metrics the components register."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from ruamel.yaml import YAML

from citywatch.center.metrics import CENTER_REGISTRY
from citywatch.edge.metrics import EDGE_REGISTRY
from citywatch.stream.metrics import BRIDGE_REGISTRY, WORKER_REGISTRY

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "citywatch-dashboard.json"
RULES = DEPLOY / "prometheus" / "alerts.yml"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "info": ("_info",),
}
METRIC = re.compile(r"\b(?:citywatch|process)_[a-z0-9_]+\b")


def exposed(registry: CollectorRegistry) -> Iterator[str]:
    """The sample names a registry exposes, also for families with no sample yet."""
    for family in registry.collect():
        suffixes = SUFFIXES.get(family.type, ("",))
        yield from (family.name + suffix for suffix in suffixes)
        yield from (sample.name for sample in family.samples)


REGISTERED = {
    name
    for registry in (WORKER_REGISTRY, BRIDGE_REGISTRY, CENTER_REGISTRY, EDGE_REGISTRY)
    for name in exposed(registry)
}


def load_yaml(text: str) -> Any:
    return YAML(typ="safe").load(text)


def dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
    return [t["expr"] for p in panels for t in p.get("targets", [])]


def rule_exprs() -> list[str]:
    groups = load_yaml(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


@pytest.mark.parametrize("expr", dashboard_exprs() + rule_exprs())
def test_every_expression_names_only_registered_metrics(expr: str) -> None:
    """A panel or alert on a misspelt metric would show nothing, silently."""
    names = METRIC.findall(expr)
    assert names or expr.startswith(("up{", "sum by (job) (up{")), f"no metric in {expr!r}"
    assert set(names) <= REGISTERED, f"not registered: {set(names) - REGISTERED}"


def test_every_component_metric_is_on_the_dashboard() -> None:
    """A metric nobody can see is either missing from the dashboard or not worth its cost."""
    used = {name for expr in dashboard_exprs() for name in METRIC.findall(expr)}
    ours = {n for n in REGISTERED if n.startswith("citywatch_") and n != "citywatch_health_check"}
    families = {re.sub(r"_(total|bucket|sum|count|info)$", "", name) for name in ours}
    shown = {re.sub(r"_(total|bucket|sum|count|info)$", "", name) for name in used}
    assert families - shown - {"citywatch_edge_gateway"} == set()


def test_the_scrape_config_loads_the_rules_and_scrapes_every_component() -> None:
    """Rules are loaded from this folder; each component has its job, as the panels expect."""
    config = load_yaml(PROMETHEUS.read_text(encoding="utf-8"))
    assert config["rule_files"] == ["/etc/prometheus/" + RULES.name]
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert {"citywatch-worker", "citywatch-bridge", "citywatch-center", "citywatch-edge"} <= jobs


def test_the_dashboard_uses_the_provisioned_datasource() -> None:
    """Every panel names the datasource uid that provisioning creates."""
    source = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml"
    uid = load_yaml(source.read_text(encoding="utf-8"))["datasources"][0]["uid"]
    panels = json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
    assert {p["datasource"]["uid"] for p in panels if p["type"] != "row"} == {uid}
