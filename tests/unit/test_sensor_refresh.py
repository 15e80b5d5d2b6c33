"""A flood held at one level keeps its work order alive (issue 18, finding 2).

A waterlogging sensor alerts on a confirmed level change; a flood held at "closure" for
hours used to send nothing, so the stream aged its work order out and reopened it later,
inflating the 复发 count. The level is now repeated as an update every ``update_every``.
"""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise

import pytest

from citywatch.config.sensor import LevelPolicy
from citywatch.config.workflow import DedupPolicy
from citywatch.contracts import Alert, AlertKind, Phase
from citywatch.edge.sensor.logic import SensorLogic
from citywatch.hardware.water.sim import SimulatedWaterSensor
from citywatch.stream.dedup import DedupEngine, Position
from tests.unit.test_sensor_logic import T0, fault, minutes, rain, sensor_config

WATERLOGGING = {AlertKind.WATERLOGGING: DedupPolicy(radius_m=100, window=minutes(60), quiet=minutes(20))}  # fmt: skip
HOME = Position(31.4309, 119.4815)


def flood_alerts(update_every: timedelta | None, plateau_min: float = 150) -> list[Alert]:
    """The depth-level alerts of a flood held at its peak for ``plateau_min``, sampled every 5 s."""
    policy = LevelPolicy(update_every=update_every)
    logic = SensorLogic("demo", sensor_config(), policy, started_at=T0)
    simulated = SimulatedWaterSensor(300, rain(peak=45, rise=10, plateau=plateau_min), seed=4)
    alerts: list[Alert] = []
    for i in range(int((plateau_min + 30) * 60 / 5)):
        time = T0 + timedelta(seconds=5 * i)
        reading = simulated.sample(time, 5 * i)
        if reading is not None:
            alerts += [m for m in logic.observe(reading) if isinstance(m, Alert)]
    return [a for a in alerts if a.rule == "depth_level"]


def test_a_held_level_is_repeated_every_update_every() -> None:
    """Two and a half hours at "closure": an update at least every 15 minutes, same level."""
    alerts = flood_alerts(minutes(15))
    gaps = [b.event_time - a.event_time for a, b in pairwise(alerts)]
    assert max(gaps) <= minutes(15) + timedelta(seconds=5)
    refreshes = [a for a in alerts if a.phase is Phase.UPDATE and a.level == "closure"]
    assert len(refreshes) >= 9
    assert all(a.attributes["previous_level"] == "closure" for a in refreshes[1:])
    assert len({a.id for a in alerts}) == len(alerts)
    assert alerts[-1].phase is Phase.END and len({a.episode_id for a in alerts}) == 1


def test_refreshes_are_the_same_on_replay() -> None:
    """Time is data: the same readings give the same refresh ids and times."""
    first, second = flood_alerts(minutes(15)), flood_alerts(minutes(15))
    assert [(a.id, a.event_time) for a in first] == [(a.id, a.event_time) for a in second]


def test_without_update_every_only_changes_are_sent() -> None:
    """``update_every: null`` keeps the old behaviour: start, level changes, end."""
    alerts = flood_alerts(None)
    assert all(a.attributes["previous_level"] != a.level for a in alerts if a.level != "dry")


@pytest.mark.parametrize(("update_every", "orders_age_out"), [(minutes(15), False), (None, True)])
def test_a_held_flood_never_ages_its_incident_out(
    update_every: timedelta | None, orders_age_out: bool
) -> None:
    """Fed to the dedup engine as the stream would, the refreshed flood is one incident that
    never closed before the water receded; without refreshes it ages out and reopens."""
    engine = DedupEngine(WATERLOGGING)
    incident = None
    for alert in flood_alerts(update_every):
        engine.expire(alert.event_time + timedelta(minutes=5))
        incident = engine.add(alert, HOME).incident
    assert incident is not None
    assert (incident.reopen_count > 0) is orders_age_out


def held_fault_alerts(kind: str, update_every: timedelta | None) -> list[Alert]:
    """The device-fault alerts of a sensor whose ``kind`` fault holds for 70 minutes."""
    logic = SensorLogic(
        "demo", sensor_config(), LevelPolicy(update_every=update_every), started_at=T0
    )
    simulated = SimulatedWaterSensor(300, rain(peak=0), faults=[fault(kind, 5, 70)], seed=2)
    alerts: list[Alert] = []
    for i in range(90 * 60):
        time = T0 + timedelta(seconds=i)
        reading = simulated.sample(time, i)
        messages = logic.observe(reading) if reading is not None else []
        alerts += [m for m in messages + logic.tick(time) if isinstance(m, Alert)]
    return [a for a in alerts if a.kind is AlertKind.DEVICE_FAULT]


@pytest.mark.parametrize("kind", ["stuck", "dropout"])
def test_a_fault_that_holds_is_repeated_so_its_ticket_never_ages_out(kind: str) -> None:
    """A unit stuck, or silent, for an hour: its one fault episode is refreshed at least every
    15 minutes (a silent unit sends nothing, so the gateway's clock does it) and ends once."""
    alerts = held_fault_alerts(kind, minutes(15))
    assert len({a.episode_id for a in alerts}) == 1
    assert alerts[0].phase is Phase.START and alerts[-1].phase is Phase.END
    gaps = [b.event_time - a.event_time for a, b in pairwise(alerts)]
    assert max(gaps) <= minutes(15) + timedelta(seconds=1)
    refreshes = [a for a in alerts if a.phase is Phase.UPDATE]
    assert len(refreshes) >= 3
    assert all(r.attributes["fault"] == alerts[0].attributes["fault"] for r in refreshes)
    assert [a.seq for a in alerts] == list(range(len(alerts)))


def test_without_update_every_a_fault_sends_only_its_start_and_end() -> None:
    """``update_every: null`` keeps a fault to its two messages."""
    assert [a.phase for a in held_fault_alerts("stuck", None)] == [Phase.START, Phase.END]
