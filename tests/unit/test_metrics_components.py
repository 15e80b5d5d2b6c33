"""What each component's metrics read from the state it keeps, and its health probes."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from faust.types import Message
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp, Receive, Scope, Send

from citywatch.center.metrics import CENTER_REGISTRY, NOT_ROUTED, RequestMetrics, RouteNote
from citywatch.contracts import DeviceKind, DeviceRef
from citywatch.edge.metrics import CAMERAS, EDGE_HEALTH, EDGE_REGISTRY, watch_session
from citywatch.edge.outbox import Outbox
from citywatch.edge.session import EdgeSession
from citywatch.metrics_server import Health, component_registry
from citywatch.mqtt_client import BrokerSettings
from citywatch.stream.bridge import Bridge
from citywatch.stream.metrics import (
    BRIDGE_COLLECTOR,
    BRIDGE_REGISTRY,
    WORKER_COUNTS,
    WORKER_REGISTRY,
    count_sent,
    kafka_probe,
    lag_of,
    lane_batch,
    mqtt_probe,
)
from citywatch.stream.settings import StreamSettings


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


# -- stream worker --------------------------------------------------------------------------
def test_the_workers_own_counts_become_stored_dead_letter_and_event_counters() -> None:
    """Keys the handlers count under map to labelled counters; nothing is counted twice."""
    WORKER_COUNTS.counts = Counter(
        {"alerts.stored": 5, "telemetry.stored": 40, "alerts.redelivered": 2,
         "dead_letter.MalformedMessage": 3, "dead_letter.DeviceMismatch": 1,
         "workorder_events": 7, "workorder_events.relayed": 2, "alerts.refused": 1}
    )  # fmt: skip
    assert value(WORKER_REGISTRY, "citywatch_stream_stored_total", kind="alerts") == 5
    assert value(WORKER_REGISTRY, "citywatch_stream_stored_total", kind="telemetry") == 40
    assert value(WORKER_REGISTRY, "citywatch_stream_redelivered_total", kind="alerts") == 2
    reasons = ("MalformedMessage", "DeviceMismatch")
    dead = [
        value(WORKER_REGISTRY, "citywatch_stream_dead_letters_total", reason=r) for r in reasons
    ]
    assert dead == [3, 1]
    assert value(WORKER_REGISTRY, "citywatch_stream_workorder_events_total", source="worker") == 7
    assert value(WORKER_REGISTRY, "citywatch_stream_workorder_events_total", source="people") == 2
    assert value(WORKER_REGISTRY, "citywatch_stream_alerts_refused_total") == 1


@pytest.mark.parametrize(
    ("highwater", "next_offset", "lag"),
    [(100, 100, 0), (100, 60, 40), (100, 120, 0), (None, 5, None), (10, None, None)],
)
def test_lag_is_what_the_partition_holds_past_the_next_offset_to_handle(
    highwater: int | None, next_offset: int | None, lag: int | None
) -> None:
    """Never negative; unknown while the broker has not said its highwater."""
    assert lag_of(highwater, next_offset) == lag


def test_a_lanes_batch_counts_its_records_once_per_batch() -> None:
    """One batch of 3 records: 3 messages in, one batch-size observation of 3."""
    topic = "unit.lane"
    before = value(WORKER_REGISTRY, "citywatch_stream_messages_in_total", topic=topic) or 0
    batch = [Message(topic, 0, n, time.time(), 0, [], b"k", b"v", None) for n in range(3)]
    lane_batch(batch, 0.01)
    assert value(WORKER_REGISTRY, "citywatch_stream_messages_in_total", topic=topic) == before + 3
    assert value(WORKER_REGISTRY, "citywatch_stream_batch_records_sum", topic=topic) == 3
    assert value(WORKER_REGISTRY, "citywatch_stream_batch_records_count", topic=topic) == 1


def test_records_sent_are_counted_by_topic() -> None:
    """Receipts and events acknowledged by the broker count under their own topics."""
    count_sent([("unit.receipts", b"k", b"v")] * 2 + [("unit.events", b"k", b"v")])
    assert value(WORKER_REGISTRY, "citywatch_stream_messages_out_total", topic="unit.receipts") == 2
    assert value(WORKER_REGISTRY, "citywatch_stream_messages_out_total", topic="unit.events") == 1


# -- bridge ---------------------------------------------------------------------------------
def test_the_bridges_stats_are_its_counters_and_its_links_its_readiness(tmp_path: Path) -> None:
    """Forwarded by topic, dead letters by reason; not ready before MQTT and Kafka are up."""
    settings = StreamSettings(
        kafka_bootstrap="127.0.0.1:1", kafka_idempotent=True, database_url="postgresql://",
        mqtt_host="127.0.0.1", mqtt_port=1, mqtt_username="b", mqtt_password="p",
        data_dir=tmp_path, bridge_id="unit",
    )  # fmt: skip
    bridge = Bridge(settings)
    BRIDGE_COLLECTOR.bridges = [bridge]
    bridge.stats.received = 12
    bridge.stats.forwarded["citywatch.alerts"] += 10
    bridge.stats.too_large = 1
    assert value(BRIDGE_REGISTRY, "citywatch_bridge_messages_in_total") == 12
    assert (
        value(BRIDGE_REGISTRY, "citywatch_bridge_messages_out_total", topic="citywatch.alerts")
        == 10
    )
    assert value(BRIDGE_REGISTRY, "citywatch_bridge_dead_letters_total", reason="too_large") == 1
    assert value(BRIDGE_REGISTRY, "citywatch_bridge_mqtt_connected") == 0
    assert mqtt_probe(bridge) == "not connected to the MQTT broker (reconnecting)"
    assert kafka_probe(bridge) == "Kafka is not taking the bridge's messages"
    bridge.stats.kafka_up = True
    assert kafka_probe(bridge) is None


# -- edge -----------------------------------------------------------------------------------
def test_a_gateways_outbox_depth_and_readiness_come_from_its_session(tmp_path: Path) -> None:
    """A queued alert shows in the outbox depth; an unconnected session is not ready."""
    device = DeviceRef(site="demo", kind=DeviceKind.SENSOR, id="s1")
    with Outbox(tmp_path / "outbox.sqlite") as outbox:
        session = EdgeSession(
            site="demo", gateway_id="gw-unit", devices=[device],
            broker=BrokerSettings(host="127.0.0.1", port=1, username="gw", password="p"),
            outbox=outbox, software="test",
        )  # fmt: skip
        watch_session(session, "sensor")
        outbox.put("a1", "t/alerts", b"{}", 1, "alert", "s1", time.time())
        gauge = "citywatch_edge_outbox_depth"
        assert value(EDGE_REGISTRY, gauge, gateway="gw-unit", kind="alert") == 1
        assert value(EDGE_REGISTRY, gauge, gateway="gw-unit", kind="telemetry") == 0
        assert value(EDGE_REGISTRY, "citywatch_edge_quarantine_size", gateway="gw-unit") == 0
        info = value(EDGE_REGISTRY, "citywatch_edge_gateway_info", gateway="gw-unit", kind="sensor")
        assert info == 1
        ok, answer = EDGE_HEALTH.report(EDGE_HEALTH.readiness)
        assert not ok
        assert answer["checks"]["mqtt gw-unit"]["reason"] == "not connected to the MQTT broker"


def test_frames_behind_never_go_down() -> None:
    """A frame decoded but still in flight counts for a moment; the counter holds its peak."""
    assert CAMERAS.behind("cam-unit", decoded=10, processed=8) == 2
    assert CAMERAS.behind("cam-unit", decoded=11, processed=10) == 2
    assert CAMERAS.behind("cam-unit", decoded=15, processed=11) == 4


# -- center ---------------------------------------------------------------------------------
class CopyingGate:
    """Like the center's gate: refuses /api/ without a token, passes a copy of the scope on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"].startswith("/api/")
            and not any(name == b"authorization" for name, _ in scope["headers"])
        ):
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await self.app({**scope, "user": "someone"}, receive, send)


@pytest.fixture
def center_like() -> TestClient:
    app = FastAPI()

    @app.get("/api/v1/unit/{order_id}")
    async def order(order_id: str) -> dict[str, str]:
        if order_id == "gone":
            raise HTTPException(404)
        return {"id": order_id}

    app.add_middleware(RouteNote)
    app.add_middleware(CopyingGate)
    app.add_middleware(RequestMetrics)
    return TestClient(app)


def test_requests_are_counted_by_route_template_and_status(center_like: TestClient) -> None:
    """Two ids of one route are one series; the gate's refusal is counted as not routed."""
    route = "/api/v1/unit/{order_id}"
    name = "citywatch_center_http_requests_total"

    def count(route: str, status: str) -> float:
        return value(CENTER_REGISTRY, name, route=route, method="GET", status=status) or 0

    before = (count(route, "200"), count(route, "404"), count(NOT_ROUTED, "401"))
    auth = {"Authorization": "Bearer x"}
    for path in ("/api/v1/unit/1", "/api/v1/unit/2", "/api/v1/unit/gone"):
        center_like.get(path, headers=auth)
    center_like.get("/api/v1/unit/3")
    after = (count(route, "200"), count(route, "404"), count(NOT_ROUTED, "401"))
    assert [a - b for a, b in zip(after, before, strict=True)] == [2, 1, 1]


def test_health_states_are_exported_as_a_gauge() -> None:
    """citywatch_health_check is 1 for a passing probe and 0 for a failing one."""
    health = Health()
    registry = component_registry(health)
    health.liveness["loop"] = lambda: None
    health.readiness["database"] = lambda: "unreachable"
    assert value(registry, "citywatch_health_check", probe="loop", kind="liveness") == 1
    assert value(registry, "citywatch_health_check", probe="database", kind="readiness") == 0


@pytest.mark.slow
def test_a_camera_gateways_frames_and_inference_are_counted() -> None:
    """The demo's cameras run a moment: frames per camera, and one inference time per frame."""
    from citywatch.config import load_config
    from citywatch.edge.camera.agent import CameraGateway
    from citywatch.edge.metrics import watch_cameras

    class Dropped:
        def publish_many(self, messages: object) -> None:
            """The alerts are not under test."""

    config = load_config(Path(__file__).resolve().parents[2] / "configs" / "demo-district.yaml")
    before = value(EDGE_REGISTRY, "citywatch_camera_inference_seconds_count") or 0
    gateway = CameraGateway(
        config, "gw-cam-renmin", Dropped(), telemetry_interval_s=3600, clip_thread=False
    )  # type: ignore[arg-type]
    watch_cameras(gateway)
    gateway.run(duration_s=2.5)
    frames = {
        camera: value(EDGE_REGISTRY, "citywatch_camera_frames_total", camera=camera) or 0
        for camera in gateway.workers
    }
    assert all(count >= 1 for count in frames.values()), frames
    inferred = (value(EDGE_REGISTRY, "citywatch_camera_inference_seconds_count") or 0) - before
    assert inferred == sum(frames.values())
    assert value(EDGE_REGISTRY, "citywatch_camera_detect_fps", camera="cam-renmin-101") == 4
