"""RuleEvents to wire Alerts: deterministic ids, one episode id per lifecycle, normalised boxes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from citywatch.config.camera import CameraConfig
from citywatch.contracts import Alert, AlertKind, Phase, decode, encode
from citywatch.contracts.messages import EvidenceKind, EvidenceRef
from citywatch.edge.camera.alerts import alert_for, episode_id
from citywatch.edge.camera.episodes import RuleEvent
from citywatch.edge.camera.rules import CameraRules
from citywatch.models.detections import Detections

W, H = 1280, 720
T0 = datetime(2026, 5, 4, 2, 0, tzinfo=UTC)
PARKED = (300.0, 450.0, 500.0, 560.0)


def camera(
    position: bool = True, camera_id: str = "cam-renmin-101", rule: str = "curb-parking"
) -> CameraConfig:
    placement: dict[str, object] = {"district": "d-shifan"}
    if position:
        placement["position"] = {"lat": 31.4309, "lon": 119.4815}
    return CameraConfig.model_validate(
        {
            "id": camera_id,
            "gateway": "gw-cam",
            "placement": placement,
            "source": {"url": "synthetic:x", "detect_fps": 5},
            "zones": [{"name": "curb", "polygon": [[0, 0.5], [0.6, 0.5], [0.6, 1], [0, 1]]}],
            "rules": [
                {
                    "type": "illegal_parking",
                    "name": rule,
                    "zones": ["curb"],
                    "dwell": "20s",
                    "update_every": "10s",
                }
            ],
        }
    )


def lifecycle(cam: CameraConfig, start: datetime = T0) -> list[RuleEvent]:
    """A car parked for 45 s that then drives away: start, two updates, end."""
    rules = CameraRules(cam, W, H, "Asia/Shanghai")
    events: list[RuleEvent] = []
    for i in range(60 * 5):
        pts = i / 5
        dx = max(0.0, pts - 45) * 120
        box = np.array([[PARKED[0] + dx, PARKED[1], PARKED[2] + dx, PARKED[3]]], np.float32)
        dets = Detections(box, np.array([0.8], np.float32), ("car",))
        events += rules.step(pts, start + timedelta(seconds=pts), dets)
    return events


@pytest.fixture(scope="module")
def events() -> list[RuleEvent]:
    return lifecycle(camera())


def test_lifecycle_shares_one_episode_id_with_increasing_seq(events: list[RuleEvent]) -> None:
    """start, updates and end carry one episode id; ids are episode.seq and unique."""
    alerts = [alert_for(e, site="demo", camera=camera()) for e in events]
    assert [a.phase for a in alerts] == [Phase.START, Phase.UPDATE, Phase.UPDATE, Phase.END]
    assert len({a.episode_id for a in alerts}) == 1
    assert [a.seq for a in alerts] == [0, 1, 2, 3]
    assert [a.id for a in alerts] == [f"{alerts[0].episode_id}.{n}" for n in range(4)]


def test_start_alert_carries_place_object_and_geometry(events: list[RuleEvent]) -> None:
    """Zone plus the camera's position, the object id, and the box as 0–1 of the frame."""
    alert = alert_for(events[0], site="demo", camera=camera())
    assert (
        alert.episode_id == f"cam-renmin-101.curb-parking.o0.{int(T0.timestamp() * 1000) + 20200}"
    )
    assert (alert.device.site, alert.device.kind.value, alert.device.id) == (
        "demo",
        "camera",
        "cam-renmin-101",
    )
    assert alert.kind is AlertKind.ILLEGAL_PARKING and alert.rule == "curb-parking"
    assert (alert.location.zone, alert.location.lat, alert.location.lon) == (
        "curb",
        31.4309,
        119.4815,
    )
    assert alert.event_time == T0 + timedelta(seconds=20.2)
    assert alert.track_id == "0" and alert.confidence == pytest.approx(0.8)
    attrs = alert.attributes
    assert attrs["class"] == "car" and attrs["rule_type"] == "illegal_parking"
    assert attrs["reason"] == "dwell" and alert.dwell_s == 20.0 and "dwell_s" not in attrs
    assert (attrs["anchor_x"], attrs["anchor_y"]) == (round(400 / W, 4), round(560 / H, 4))
    assert [attrs[k] for k in ("x1", "y1", "x2", "y2")] == [
        round(v, 4) for v in (300 / W, 450 / H, 500 / W, 560 / H)
    ]


def test_replay_produces_exactly_the_live_messages(events: list[RuleEvent]) -> None:
    """The same frames and times give byte-identical encoded alerts."""
    live = [encode(alert_for(e, site="demo", camera=camera())) for e in events]
    replay = [encode(alert_for(e, site="demo", camera=camera())) for e in lifecycle(camera())]
    assert live == replay
    assert isinstance(decode(live[0]), Alert)


def test_the_same_object_key_on_another_day_is_another_episode() -> None:
    """Object ids restart with the agent; the start time keeps episode ids apart."""
    today = lifecycle(camera())[0]
    tomorrow = lifecycle(camera(), start=T0 + timedelta(days=1))[0]
    assert today.episode_key == tomorrow.episode_key
    assert episode_id("cam", today) != episode_id("cam", tomorrow)


def test_camera_without_position_sends_the_zone_only(events: list[RuleEvent]) -> None:
    """No lat/lon is invented when the camera has no position."""
    alert = alert_for(events[0], site="demo", camera=camera(position=False))
    assert (alert.location.zone, alert.location.has_point) == ("curb", False)


def test_evidence_refs_are_passed_through(events: list[RuleEvent]) -> None:
    """The caller's snapshot reference travels with the alert."""
    ref = EvidenceRef(kind=EvidenceKind.SNAPSHOT, uri="file:///var/lib/citywatch/snap/1.jpg")
    alert = alert_for(events[0], site="demo", camera=camera(), evidence=(ref,))
    assert alert.evidence == (ref,)


def test_overlong_ids_are_hashed_to_fit_the_wire() -> None:
    """A long camera and rule name still give a valid, stable id under 128 characters."""
    long_camera = camera(camera_id="c" * 64, rule="r" * 64)
    event = lifecycle(long_camera)[0]
    alert = alert_for(event, site="demo", camera=long_camera)
    assert len(alert.id) <= 128 and alert.id.startswith("c" * 40)
    assert "r" * 64 not in alert.id
    assert alert.episode_id == episode_id("c" * 64, event)
