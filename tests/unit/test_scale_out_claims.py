"""The claim decision of a worker that shares a city with others (issue 21), without a
database: which alerts of a batch claim their place, and how an incident another worker
stored is taken in so the alert across the border joins it. The locks and the look-up
run on the real stack in tests/integration/test_scale_out.py."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import h3

from citywatch.config import CitywatchConfig
from citywatch.contracts import Alert, AlertKind, DeviceRef, Location
from citywatch.stream.dedup import Position
from citywatch.stream.dedup_claim import PlaceClaims, adopt
from citywatch.stream.processor import AlertProcessor
from citywatch.stream.sink import AlertRow, KafkaPosition
from tests.unit.test_partitioning import CENTRE, straddling_points

T0 = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
RESOLUTION = 6
SIDE_A, SIDE_B = straddling_points(CENTRE, RESOLUTION, 8, 1)[0]


def dock_alert(alert_id: str, at: Position, kind: AlertKind = AlertKind.ILLEGAL_PARKING,
               minutes: float = 0) -> Alert:  # fmt: skip
    return Alert(
        id=alert_id, episode_id=alert_id, seq=0,
        device=DeviceRef(site="demo", kind="dock", id="dock-chengxi-01"), kind=kind,
        rule="patrol", phase="start", event_time=T0 + timedelta(minutes=minutes),
        location=Location(lat=at.lat, lon=at.lon), confidence=0.8,
    )  # fmt: skip


def row(alert: Alert) -> AlertRow:
    return AlertRow(alert, KafkaPosition("citywatch.alerts", 0, 0), "d-shifan")


def test_only_alerts_within_their_radius_of_a_border_claim(demo_config: CitywatchConfig) -> None:
    """Of a batch: the border alerts claim; the cell's middle, faults and fixed cameras
    far inside their cell do not (the demo cameras are 600 m inside theirs)."""
    claims = PlaceClaims(AlertProcessor(demo_config), RESOLUTION)
    middle = Position(*h3.cell_to_latlng(h3.latlng_to_cell(CENTRE.lat, CENTRE.lon, RESOLUTION)))
    camera = dock_alert("cam.1", Position(31.4309, 119.4815)).model_copy(
        update={"device": DeviceRef(site="demo", kind="camera", id="cam-renmin-101")}
    )
    batch = [
        dock_alert("a.1", SIDE_A),
        dock_alert("b.1", SIDE_B),
        dock_alert("m.1", middle, kind=AlertKind.SMOKE),
        dock_alert("f.1", SIDE_A, kind=AlertKind.DEVICE_FAULT),
        camera,
    ]
    needed = claims.claims([row(a) for a in batch])
    assert [c.box[0] for c in needed] == ["illegal_parking", "illegal_parking"]
    assert set(needed[0].locks) & set(needed[1].locks), "the two sides must meet on a lock"


def test_an_incident_taken_in_from_another_worker_takes_the_alert_across_the_border(
    demo_config: CitywatchConfig,
) -> None:
    """Worker X opened the order on side A; worker Y, having read it under its claim, puts
    side B's alert into that order instead of opening a second one."""
    worker_x, worker_y = AlertProcessor(demo_config), AlertProcessor(demo_config)
    order, incident, _, _ = worker_x._fold(dock_alert("a.1", SIDE_A))
    stored = copy.deepcopy((order, incident))
    stored[1].version = 1  # what X committed
    assert adopt(worker_y, [stored]) == 1
    placed, placed_incident, _, _ = worker_y._fold(dock_alert("b.1", SIDE_B, minutes=1))
    assert placed.id == order.id
    assert placed_incident.alert_ids == ["a.1", "b.1"]
    alone = AlertProcessor(demo_config)  # without the claim: a second order for one car
    assert alone._fold(dock_alert("b.1", SIDE_B, minutes=1))[0].id != order.id


def test_an_incident_held_at_its_stored_version_is_not_read_again(
    demo_config: CitywatchConfig,
) -> None:
    """A worker's own incidents, unchanged since it wrote them, are left as they are; one
    another worker moved on replaces the stale copy."""
    worker = AlertProcessor(demo_config)
    order, incident, _, _ = worker._fold(dock_alert("a.1", SIDE_A))
    incident.version = 3
    assert adopt(worker, [copy.deepcopy((order, incident))]) == 0
    assert worker.incident_of[order.id] is incident
    newer = copy.deepcopy((order, incident))
    newer[1].version = 4
    newer[1].alert_ids.append("b.9")
    assert adopt(worker, [newer]) == 1
    assert worker.incident_of[order.id].alert_ids == ["a.1", "b.9"]
