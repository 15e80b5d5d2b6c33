"""Every long-running component serves Prometheus metrics and health on its --metrics-port.

The stream worker, a bridge, the command center and a sensor gateway run as the CLI runs
them, against the session's embedded stack, under topic names, a shared-subscription group
and a database of their own (so the session's pipeline, if it runs, neither takes their
traffic nor shares their work orders). A sensor floods; its alert goes through all four,
and each one's counters move.
"""

from __future__ import annotations

import shutil
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from citywatch.contracts import KafkaTopics
from citywatch.stack.child import CliProcess
from citywatch.stack.ports import pick_free_port
from tests.conftest import REPO, RunningStack, fresh_database
from tests.polling import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GATEWAY = "gw-sensors-east"
EMBEDDED_DB = "database: {url: embedded}"
GATEWAY_LINE = f"    - id: {GATEWAY}"
HEBIN = "{start_after: 5s, rise: 25s, plateau: 10s, drain: 20s, peak_depth_cm: 18, noise_cm: 0.5}"
FAST_HEBIN = (
    "{start_after: 0s, rise: 2s, plateau: 120s, drain: 20s, peak_depth_cm: 18, noise_cm: 0.2}"
)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def site_config(directory: Path, prefix: str, database_url: str) -> Path:
    """The demo site whose Hebin Rd sensor floods at once, under its own Kafka topics,
    MQTT share group and database."""
    shutil.copytree(REPO / "configs" / "demo-district", directory / "demo-district")
    demo = (REPO / "configs" / "demo-district.yaml").read_text(encoding="utf-8")
    assert demo.count(EMBEDDED_DB) == 1, "the demo's database line changed: update this test"
    demo = demo.replace(EMBEDDED_DB, f"database: {{url: '{database_url}'}}")
    (directory / "demo-district.yaml").write_text(demo, encoding="utf-8")
    devices = directory / "demo-district" / "devices.yaml"
    text = devices.read_text(encoding="utf-8")
    assert text.count(HEBIN) == 1, "the demo's Hebin Rd rain changed: update this test"
    assert text.count(GATEWAY_LINE) == 1, "the demo's sensor gateway changed: update this test"
    text = text.replace(HEBIN, FAST_HEBIN).replace(  # an outbox no other test has written to
        GATEWAY_LINE, f"{GATEWAY_LINE}\n      outbox_path: {directory / 'outbox.sqlite'}"
    )
    devices.write_text(text, encoding="utf-8")
    site = directory / "site.yaml"
    site.write_text(
        "include:\n  - demo-district.yaml\n"
        f"services:\n  kafka:\n    topic_prefix: {prefix}\n"
        f"  mqtt:\n    share_group: {prefix}\n",
        encoding="utf-8",
    )
    return site


def scrape(port: int) -> Samples:
    """Every sample of a component's /metrics, by name and labels."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= have)


def health(port: int, path: str) -> tuple[int, dict[str, object]]:
    answer = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)
    return answer.status_code, answer.json()


class Components:
    """The CLI processes under test and their metrics ports."""

    def __init__(self, stack: RunningStack, site: Path, logs: Path) -> None:
        self.env = {"CITYWATCH_DATA_DIR": str(stack.data_dir), "CITYWATCH_CONFIG": str(site)}
        self.logs = logs
        self.processes: dict[str, CliProcess] = {}
        self.ports: dict[str, int] = {}

    def start(self, name: str, args: list[str]) -> None:
        self.ports[name] = port = pick_free_port(exclude=self.ports.values())
        self.processes[name] = CliProcess(
            [*args, "--metrics-port", str(port), "--metrics-host", "127.0.0.1"],
            self.logs / f"{name}.log", self.env, cwd=REPO,
        )  # fmt: skip

    def ready(self, name: str) -> bool:
        process = self.processes[name]
        assert process.process.poll() is None, f"{name} exited:\n{process.output()[-3000:]}"
        try:
            return health(self.ports[name], "/readyz")[0] == 200
        except httpx.HTTPError:
            return False

    def scrape_until(self, name: str, name_of: str, what: str, **labels: str) -> Samples:
        """A scrape of ``name`` once its ``name_of`` samples (matching ``labels``) are > 0."""

        def moved() -> Samples | None:
            samples = scrape(self.ports[name])
            return samples if total(samples, name_of, **labels) > 0 else None

        return wait_for(moved, 60, what)

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()


@pytest.fixture
def components(stack: RunningStack, tmp_path: Path) -> Iterator[tuple[Components, str]]:
    prefix = f"metrics{uuid.uuid4().hex[:6]}"
    with fresh_database(stack, "metrics") as database_url:
        running = Components(stack, site_config(tmp_path, prefix, database_url), tmp_path)
        try:
            yield running, prefix
        finally:
            running.stop()


def open_feed(url: str, token: str, opened: threading.Event, stop: threading.Event) -> None:
    """One live-feed client, connected until ``stop``."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.stream("GET", f"{url}/api/v1/feed", headers=headers, timeout=30) as response:
        response.raise_for_status()
        opened.set()
        stop.wait(30)


def test_each_component_serves_metrics_that_move_with_a_floods_alert(
    stack: RunningStack, components: tuple[Components, str]
) -> None:
    """Worker, bridge, center and gateway: /healthz and /readyz 200, counters up after an alert."""
    running, prefix = components
    topics = KafkaTopics(prefix)
    center_port = pick_free_port()
    running.start("worker", ["stream", "app", "--log-level", "WARNING"])
    running.start("bridge", ["stream", "bridge", "--bridge-id", prefix, "--log-level", "WARNING"])
    running.start(
        "center", ["center", "serve", "--port", str(center_port), "--log-level", "WARNING"]
    )
    for name in ("worker", "bridge", "center"):
        wait_for(lambda n=name: running.ready(n), 120, f"{name}'s /readyz")  # type: ignore[misc]
        status, body = health(running.ports[name], "/healthz")
        assert status == 200 and body["status"] == "ok", (name, body)
    before = {name: scrape(running.ports[name]) for name in ("worker", "bridge", "center")}
    assert total(before["worker"], "citywatch_health_check", probe="database") == 1

    running.start("gateway", ["edge", "sensor", "--gateway", GATEWAY, "--log-level", "WARNING"])
    wait_for(lambda: running.ready("gateway"), 60, "the gateway's /readyz (MQTT connected)")

    def alert_receipted() -> bool:
        edge = scrape(running.ports["gateway"])
        return total(edge, "citywatch_edge_messages_in_total", status="stored") >= 1

    wait_for(alert_receipted, 90, "the flood alert's receipt at the gateway")
    token = (stack.data_dir / "secrets" / "center-viewer").read_text().strip()
    center_url = f"http://127.0.0.1:{center_port}"
    opened, stop = threading.Event(), threading.Event()
    client = threading.Thread(target=open_feed, args=(center_url, token, opened, stop), daemon=True)
    client.start()
    try:
        assert opened.wait(15), "the live feed did not open"
        wait_for(
            lambda: total(scrape(running.ports["center"]), "citywatch_center_feed_clients") == 1,
            10, "one live-feed client counted",
        )  # fmt: skip
    finally:
        stop.set()
        client.join(10)

    worker = running.scrape_until(
        "worker", "citywatch_stream_stored_total", "the worker's stored alerts", kind="alerts"
    )
    bridge = scrape(running.ports["bridge"])
    center = running.scrape_until(
        "center", "citywatch_center_feed_events_total", "the work order's events in the feed"
    )
    edge = scrape(running.ports["gateway"])

    def moved(samples: Samples, old: Samples, name: str, **labels: str) -> bool:
        return total(samples, name, **labels) > total(old, name, **labels)

    assert moved(
        worker, before["worker"], "citywatch_stream_messages_in_total", topic=topics.alerts
    )
    assert moved(
        worker, before["worker"], "citywatch_stream_messages_out_total", topic=topics.receipts
    )
    assert moved(worker, before["worker"], "citywatch_stream_commit_seconds_count")
    assert moved(
        worker, before["worker"], "citywatch_stream_batch_records_count", topic=topics.alerts
    )
    assert moved(
        worker, before["worker"], "citywatch_stream_workorder_events_total", source="worker"
    )
    assert total(worker, "citywatch_stream_assigned_partitions") >= 1
    assert ("citywatch_stream_consumer_lag", frozenset(
        {("topic", topics.alerts), ("partition", "0")})) in worker  # fmt: skip
    assert moved(bridge, before["bridge"], "citywatch_bridge_messages_in_total")
    assert moved(
        bridge, before["bridge"], "citywatch_bridge_messages_out_total", topic=topics.alerts
    )
    assert moved(bridge, before["bridge"], "citywatch_bridge_downlink_total")
    assert total(bridge, "citywatch_bridge_mqtt_connected") == 1
    assert moved(center, before["center"], "citywatch_center_http_requests_total",
                 route="/api/v1/feed", status="200")  # fmt: skip
    assert total(edge, "citywatch_edge_messages_out_total", gateway=GATEWAY) >= 1
    assert total(edge, "citywatch_edge_receipt_round_trip_seconds_count") >= 1
    assert total(edge, "citywatch_edge_outbox_depth", gateway=GATEWAY, kind="alert") == 0
    assert total(edge, "citywatch_edge_quarantine_size", gateway=GATEWAY) == 0
    assert total(edge, "citywatch_edge_gateway_info", gateway=GATEWAY, kind="sensor") == 1
    status, body = health(running.ports["gateway"], "/readyz")
    assert status == 200 and body["checks"] == {f"mqtt {GATEWAY}": {"ok": True, "reason": None}}


def test_a_taken_metrics_port_stops_the_command_with_exit_status_2(
    stack: RunningStack, tmp_path: Path
) -> None:
    """A probe must not reach a port someone else answers on: the agent refuses to start."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {"CITYWATCH_METRICS_PORT": str(port), "CITYWATCH_METRICS_HOST": "127.0.0.1",
               "CITYWATCH_DATA_DIR": str(stack.data_dir)}  # fmt: skip
        agent = CliProcess(
            ["edge", "sensor", "--gateway", GATEWAY], tmp_path / "log", env, cwd=REPO
        )
        assert agent.process.wait(60) == 2
        agent.stop()
    assert f"cannot serve metrics on 127.0.0.1:{port}" in agent.output()
    assert "--metrics-port" in agent.output()
