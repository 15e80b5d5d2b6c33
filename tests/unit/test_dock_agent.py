"""The dock agent on a simulated patrol in compressed time: geo-located alerts, telemetry, replies."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from citywatch.config.base import GeoPoint
from citywatch.config.dock import (
    DockConfig,
    DockDetection,
    DockSimulation,
    PlantedObject,
    SimulatedDockLink,
)
from citywatch.config.site import Placement
from citywatch.contracts import Alert, AlertKind, Telemetry
from citywatch.edge.dock.agent import DockAgent, LocalMediaStore, make_detector
from citywatch.edge.geo import distance_m
from citywatch.edge.outbox import PutResult
from citywatch.hardware.dock.sim import SimulatedDock

pytestmark = pytest.mark.service  # each test flies the whole agent on a patrol

EPOCH = datetime(2025, 7, 1, 2, 0, tzinfo=UTC)
SMOKE = GeoPoint(lat=31.42880, lon=119.47285)
STALL = GeoPoint(lat=31.42960, lon=119.47400)
CAR = GeoPoint(lat=31.42720, lon=119.47090)


class Recorder:
    """Stands in for the EdgeSession: keeps what the agent published."""

    def __init__(self) -> None:
        self.messages: list[Alert | Telemetry] = []

    def publish_many(self, messages: Sequence[Alert | Telemetry]) -> PutResult:
        self.messages += messages
        return PutResult(stored=len(messages), duplicates=0, shed=0, refused=())

    def alerts(self) -> list[Alert]:
        return [m for m in self.messages if isinstance(m, Alert)]

    def telemetry(self) -> list[Telemetry]:
        return [m for m in self.messages if isinstance(m, Telemetry)]


def dock_config(parking: bool = False) -> DockConfig:
    return DockConfig(
        id="dock-test-01",
        gateway="gw-dock-01",
        serial="4TADKCM0010016",
        placement=Placement(district="d-1", position=GeoPoint(lat=31.4268, lon=119.4702)),
        altitude_m=80,
        patrol_route=(
            GeoPoint(lat=31.4268, lon=119.4702),
            GeoPoint(lat=31.4301, lon=119.4745),
        ),
        detection=DockDetection(parking_alerts=parking),
        link=SimulatedDockLink(type="simulated"),
        simulation=DockSimulation(
            takeoff_after=timedelta(seconds=3),
            speed_ms=12,
            photo_interval=timedelta(seconds=4),
            planted=(
                PlantedObject(kind="smoke", position=SMOKE, heading_deg=60),
                PlantedObject(kind="stall", position=STALL),
                PlantedObject(kind="car", position=CAR, heading_deg=30),
            ),
        ),
    )


def fly(
    tmp_path: Path, config: DockConfig, until_s: int = 60
) -> tuple[SimulatedDock, DockAgent, Recorder]:
    sim = SimulatedDock(config, tmp_path / "media", epoch=EPOCH)
    recorder = Recorder()
    agent = DockAgent(
        site="demo",
        dock=config,
        detector=make_detector(config),
        media=LocalMediaStore(tmp_path / "media"),
        publisher=recorder,
        reply=sim.receive,
    )
    for t in range(until_s + 1):
        now = EPOCH + timedelta(seconds=t)
        for topic, payload in sim.advance(t):
            agent.handle(topic, payload, now)
        agent.tick(now)
    return sim, agent, recorder


@pytest.fixture(scope="module")
def patrol(tmp_path_factory: pytest.TempPathFactory) -> tuple[SimulatedDock, DockAgent, Recorder]:
    return fly(tmp_path_factory.mktemp("patrol"), dock_config())


def test_patrol_takes_photos_and_every_event_is_replied(patrol) -> None:  # type: ignore[no-untyped-def]
    """Every event sent with need_reply (progress, uploads) got its events_reply."""
    sim, agent, _ = patrol
    assert len(sim.photos) >= 8
    assert agent.stats.photos == len(sim.photos)
    assert not sim.awaiting_reply
    assert any(r["topic"].endswith("/events_reply") for r in sim.replies)
    assert any(r["topic"].endswith("/status_reply") for r in sim.replies)
    assert not agent.stats.errors


@pytest.mark.parametrize(
    ("kind", "planted"), [(AlertKind.SMOKE, SMOKE), (AlertKind.STREET_VENDING, STALL)]
)
def test_alerts_are_placed_at_the_planted_objects(patrol, kind, planted) -> None:  # type: ignore[no-untyped-def]
    """Smoke and stall alerts land within 5 m of where the objects were planted."""
    _, _, recorder = patrol
    alerts = [a for a in recorder.alerts() if a.kind is kind]
    assert alerts, f"no {kind} alert"
    for alert in alerts:
        assert alert.location.lat is not None and alert.location.lon is not None
        assert distance_m(alert.location.lat, alert.location.lon, planted.lat, planted.lon) < 5.0
        assert alert.device.kind.value == "dock"
        assert alert.evidence[0].uri.startswith("file://")
        assert alert.attributes["object_key"] in alert.evidence[0].uri


def test_parked_cars_raise_nothing_unless_configured(patrol, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Cars are illegal_parking only where the dock's config polices parking."""
    _, _, recorder = patrol
    assert not [a for a in recorder.alerts() if a.kind is AlertKind.ILLEGAL_PARKING]
    _, _, with_parking = fly(tmp_path, dock_config(parking=True), until_s=30)
    cars = [a for a in with_parking.alerts() if a.kind is AlertKind.ILLEGAL_PARKING]
    assert cars
    for alert in cars:
        assert alert.location.lat is not None and alert.location.lon is not None
        assert distance_m(alert.location.lat, alert.location.lon, CAR.lat, CAR.lon) < 5.0


def test_telemetry_reports_liveness_battery_position_and_flight(patrol) -> None:  # type: ignore[no-untyped-def]
    """In flight: aircraft online with its position and battery; after landing: docked."""
    _, _, recorder = patrol
    telemetry = recorder.telemetry()
    flying = [t for t in telemetry if t.metrics.get("aircraft_online") == 1.0]
    assert flying, "no telemetry while the aircraft flew"
    sample = flying[-1].metrics
    assert {"aircraft_lat", "aircraft_lon", "battery_percent", "flight_percent"} <= set(sample)
    assert sample["flight_active"] == 1.0
    last = telemetry[-1].metrics
    assert last["dock_online"] == 1.0 and last["aircraft_online"] == 0.0
    assert last["drone_in_dock"] == 1.0 and last["flight_active"] == 0.0


def test_dock_goes_offline_when_osd_stops(tmp_path: Path) -> None:
    """No last will: the dock is offline once its OSD is older than osd_timeout."""
    _, agent, recorder = fly(tmp_path, dock_config(), until_s=5)
    later = EPOCH + timedelta(seconds=5) + agent.dock.osd_timeout + timedelta(seconds=20)
    agent.tick(later)
    metrics = recorder.telemetry()[-1].metrics
    assert metrics["dock_online"] == 0.0
    assert metrics["osd_age_s"] > agent.dock.osd_timeout.total_seconds()


def test_redelivered_upload_gives_the_same_alert_ids(tmp_path: Path) -> None:
    """A file_upload_callback resent by the dock yields alerts with the same ids."""
    config = dock_config()
    sim = SimulatedDock(config, tmp_path / "media", epoch=EPOCH)
    recorder = Recorder()
    agent = DockAgent(
        site="demo",
        dock=config,
        detector=make_detector(config),
        media=LocalMediaStore(tmp_path / "media"),
        publisher=recorder,
        reply=sim.receive,
    )
    uploads = []
    for t in range(40):
        for topic, payload in sim.advance(t):
            agent.handle(topic, payload, EPOCH + timedelta(seconds=t))
            if b"file_upload_callback" in payload:
                uploads.append((topic, payload))
    first = [a.id for a in recorder.alerts()]
    assert first
    recorder.messages.clear()
    for topic, payload in uploads:
        agent.handle(topic, payload, EPOCH + timedelta(seconds=41))
    assert [a.id for a in recorder.alerts()] == first


def test_bad_messages_and_missing_photos_are_counted_not_raised(tmp_path: Path) -> None:
    """Garbage, unknown topics and photos absent from the media folder are counted by name."""
    config = dock_config()
    agent = DockAgent(
        site="demo",
        dock=config,
        detector=make_detector(config),
        media=LocalMediaStore(tmp_path),
        publisher=Recorder(),
        reply=lambda topic, payload: None,
    )
    now = EPOCH
    agent.handle("thing/product/4TADKCM0010016/osd", b"{not json", now)
    agent.handle("thing/product/4TADKCM0010016/nonsense", b"{}", now)
    upload = (
        b'{"tid":"t","bid":"b","timestamp":1751335200000,"method":"file_upload_callback",'
        b'"gateway":"4TADKCM0010016","need_reply":1,"data":{"file":{"object_key":"../../etc/passwd",'
        b'"metadata":{"gimbal_yaw_degree":0,"relative_altitude":80,'
        b'"shoot_position":{"lat":31.4,"lng":119.4}}}}}'
    )
    agent.handle("thing/product/4TADKCM0010016/events", upload, now)
    assert agent.stats.errors == {
        "dji.MalformedDjiMessage": 1,
        "dji.UnknownDjiTopic": 1,
        "media.MediaMissing": 1,
    }
    assert agent.stats.replies == 1
