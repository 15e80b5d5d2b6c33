"""The stream worker's orchestration of folds and recurrences, without a database (issue 18).

``AlertProcessor._fold`` is the step a batch runs per new alert (placing it, opening,
reopening or folding work orders); the database writes around it are tested on the real
stack in tests/integration/test_late_backlog.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from citywatch.config import CitywatchConfig
from citywatch.contracts import Alert, AlertKind, DeviceKind, DeviceRef, Location, Phase
from citywatch.stream.processor import AlertProcessor
from citywatch.workorder.lifecycle import WorkOrderState, apply

T0 = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
SPOT = (31.4312, 119.4821)


def sighting(name: str, seq: int, minutes: float, device: str, kind: AlertKind,
             phase: Phase | None = None) -> Alert:  # fmt: skip
    """One alert of episode ``name`` at SPOT, ``minutes`` after T0."""
    return Alert(
        id=f"{name}.{seq}", episode_id=name, seq=seq,
        device=DeviceRef(site="demo", kind=DeviceKind.CAMERA, id=device), kind=kind, rule="r",
        phase=phase or (Phase.START if seq == 0 else Phase.UPDATE),
        event_time=T0 + timedelta(minutes=minutes),
        location=Location(lat=SPOT[0], lon=SPOT[1]), confidence=0.9,
    )  # fmt: skip


def test_a_backlog_folds_its_order_into_the_live_one(demo_config: CitywatchConfig) -> None:
    """The live order absorbs the backlog's order: both events, the alerts, a merged order."""
    processor = AlertProcessor(demo_config)
    parking = AlertKind.ILLEGAL_PARKING
    live = [sighting("live", i, 60 + 10 * i, "cam-renmin-101", parking) for i in range(2)]
    backlog = [sighting("gw", i, 10 * i, "cam-renmin-102", parking) for i in range(5)]
    for alert in live:
        live_order, _, _, _ = processor._fold(alert)
    folds = []
    for alert in backlog:
        order, _, events, _ = processor._fold(alert)
        folds += [(e.work_order_id, e.event) for e in events if e.event in ("absorbed", "merged")]
    gone = processor.orders["inc.gw.0"]
    assert order is live_order
    assert folds == [("inc.live.0", "absorbed"), ("inc.gw.0", "merged")]
    assert gone.state is WorkOrderState.MERGED
    assert set(live_order.alert_ids) == {a.id for a in live + backlog}


def test_water_back_at_an_order_people_resolved_is_attached_not_refused(
    demo_config: CitywatchConfig,
) -> None:
    """A recurrence on an order resolved and awaiting verification cannot reopen it: the
    alert is attached and the batch goes on (it used to raise TransitionRefused)."""
    processor = AlertProcessor(demo_config)
    water = AlertKind.WATERLOGGING
    order, _, _, _ = processor._fold(sighting("wl", 0, 0, "cam-renmin-101", water))
    processor._fold(sighting("wl", 1, 5, "cam-renmin-101", water, Phase.END))
    for action, args in (("dispatch", {"department": "drainage"}), ("sign", {}),
                         ("resolve", {"note": "抽排完毕"})):  # fmt: skip
        apply(order, action, actor="op", time=T0 + timedelta(minutes=20), **args)
    processor.engine.expire(T0 + timedelta(hours=1))
    again, incident, events, _ = processor._fold(sighting("wl2", 0, 120, "cam-renmin-101", water))
    assert again is order and incident.state == "open" and events == []
    assert order.state is WorkOrderState.RESOLVED and "wl2.0" in order.alert_ids


def test_water_back_at_a_closed_order_reopens_it(demo_config: CitywatchConfig) -> None:
    """复发 under reopen: a closed order reopens and goes back to the department."""
    processor = AlertProcessor(demo_config)
    water = AlertKind.WATERLOGGING
    order, _, _, _ = processor._fold(sighting("wl", 0, 0, "cam-renmin-101", water))
    processor._fold(sighting("wl", 1, 5, "cam-renmin-101", water, Phase.END))
    for action, args in (("dispatch", {"department": "drainage"}), ("sign", {}),
                         ("resolve", {"note": "抽排完毕"}), ("verify", {"passed": True}),
                         ("close", {})):  # fmt: skip
        apply(order, action, actor="op", time=T0 + timedelta(minutes=20), **args)
    processor.engine.expire(T0 + timedelta(hours=1))
    _, _, events, _ = processor._fold(sighting("wl2", 0, 120, "cam-renmin-101", water))
    assert [e.event for e in events] == ["reopened", "dispatched"]
    assert order.reopen_count == 1 and order.is_open
