"""The metrics port every long-running command serves: /metrics, /healthz and /readyz."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import Counter

from citywatch.metrics_server import (
    Health,
    Heartbeat,
    MetricsPortError,
    MetricsServer,
    component_registry,
    serve,
)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


@pytest.fixture
def health() -> Health:
    return Health()


@pytest.fixture
def server(health: Health) -> Iterator[MetricsServer]:
    registry = component_registry()
    Counter("citywatch_test_things", "Things counted.", registry=registry).inc(3)
    running = serve(registry, health, "127.0.0.1", 0)
    yield running
    running.close()


def test_metrics_are_served_in_prometheus_text_with_the_process_metrics(
    server: MetricsServer,
) -> None:
    """/metrics shows the component's own counters and the process's CPU and memory."""
    status, text = get(f"{server.url}/metrics")
    assert status == 200
    assert "citywatch_test_things_total 3.0" in text
    assert "process_cpu_seconds_total" in text
    assert "_created" not in text


def test_health_answers_200_with_every_probe_named_when_all_pass(
    server: MetricsServer, health: Health
) -> None:
    """/healthz and /readyz list each probe; all passing is 200 and status ok."""
    health.liveness["loop"] = lambda: None
    health.readiness["database"] = lambda: None
    for path in ("/healthz", "/readyz"):
        status, body = get(f"{server.url}{path}")
        assert status == 200
        assert json.loads(body)["status"] == "ok"
    assert json.loads(get(f"{server.url}/readyz")[1])["checks"] == {
        "database": {"ok": True, "reason": None}
    }


def test_a_failing_or_broken_probe_makes_readiness_503_with_its_reason(
    server: MetricsServer, health: Health
) -> None:
    """A probe's reason, or the exception a broken probe raised, is in the 503 answer."""
    health.readiness["mqtt"] = lambda: "not connected to the MQTT broker"
    health.readiness["kafka"] = lambda: 1 / 0  # type: ignore[func-returns-value]
    status, body = get(f"{server.url}/readyz")
    checks = json.loads(body)["checks"]
    assert status == 503
    assert checks["mqtt"] == {"ok": False, "reason": "not connected to the MQTT broker"}
    assert checks["kafka"]["reason"].startswith("probe failed: ZeroDivisionError")
    assert get(f"{server.url}/healthz")[0] == 200  # liveness is its own set of probes


def test_unknown_paths_are_404(server: MetricsServer) -> None:
    """Only the three paths are served."""
    assert get(f"{server.url}/admin")[0] == 404


def test_a_taken_port_is_an_error_that_says_what_to_do() -> None:
    """Binding a port someone holds raises MetricsPortError naming the option."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(MetricsPortError, match="--metrics-port"):
            serve(component_registry(), Health(), "127.0.0.1", port)


def test_heartbeat_fails_after_its_silence_limit() -> None:
    """A loop that stopped beating is reported with how long it has been silent."""
    now = [100.0]
    heartbeat = Heartbeat(30.0, clock=lambda: now[0])
    now[0] = 129.0
    assert heartbeat.probe() is None
    now[0] = 131.0
    assert heartbeat.probe() == "no heartbeat for 31 s (limit 30 s)"
    heartbeat.beat()
    assert heartbeat.probe() is None


def test_a_component_not_built_yet_is_not_ready() -> None:
    """Until the component puts its own probe in, the starting probe says not yet."""
    health = Health(starting="database")
    assert health.report(health.readiness) == (
        False, {"status": "failing", "checks": {"database": {"ok": False, "reason": "starting"}}}
    )  # fmt: skip
    health.readiness["database"] = lambda: None
    assert health.report(health.readiness)[0]
