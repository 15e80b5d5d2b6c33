"""The dedup core: many sightings of one problem become one incident (issue 5, part 3)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citywatch.config.workflow import DedupPolicy
from citywatch.contracts import Alert, AlertKind, DeviceKind, DeviceRef, Location, Phase
from citywatch.stream.dedup import (
    M_PER_DEG,
    DedupEngine,
    DedupResult,
    Incident,
    MissingDedupPolicy,
    Position,
    distance_m,
)

T0 = datetime(2025, 7, 1, 8, 0, tzinfo=UTC)
HOME = Position(31.4309, 119.4815)  # the demo district's Renmin/Jianshe crossing
LATENESS = timedelta(minutes=5)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


# The demo district's policies; quiet 10 min and reopen 24 h unless given.
POLICIES = {
    AlertKind.ILLEGAL_PARKING: DedupPolicy(radius_m=15, window=minutes(30)),
    AlertKind.STREET_VENDING: DedupPolicy(radius_m=30, window=minutes(60)),
    AlertKind.SMOKE: DedupPolicy(radius_m=300, window=minutes(30), quiet=minutes(15)),
    AlertKind.WATERLOGGING: DedupPolicy(radius_m=100, window=minutes(60), quiet=minutes(20)),
    AlertKind.DEVICE_FAULT: DedupPolicy(radius_m=1, window=minutes(60)),
}
PARKING = POLICIES[AlertKind.ILLEGAL_PARKING]


def offset(origin: Position, north_m: float = 0.0, east_m: float = 0.0) -> Position:
    """The point ``north_m`` north and ``east_m`` east of ``origin``."""
    lat = origin.lat + north_m / M_PER_DEG
    lon = origin.lon + east_m / (M_PER_DEG * math.cos(math.radians((origin.lat + lat) / 2)))
    return Position(lat, lon)


def alert(
    alert_id: str,
    at_min: float,
    *,
    episode: str | None = None,
    phase: Phase = Phase.START,
    kind: AlertKind = AlertKind.ILLEGAL_PARKING,
    device: str = "cam-1",
    device_kind: DeviceKind = DeviceKind.CAMERA,
    confidence: float = 0.8,
    attributes: dict[str, str | int | float | bool] | None = None,
) -> Alert:
    """An alert ``at_min`` minutes after T0; its episode defaults to its own id."""
    return Alert(
        id=alert_id,
        episode_id=episode or alert_id,
        seq=0,
        device=DeviceRef(site="demo", kind=device_kind, id=device),
        kind=kind,
        rule="rule",
        phase=phase,
        event_time=T0 + minutes(at_min),
        location=Location(zone="zone"),
        confidence=confidence,
        attributes=attributes or {},
    )


def episode(
    name: str,
    start_min: float,
    end_min: float | None,
    *,
    updates: int = 1,
    **kwargs: Any,
) -> list[Alert]:
    """A start, ``updates`` updates and (unless ``end_min`` is None) an end, evenly spaced."""
    last = end_min if end_min is not None else start_min + updates + 1
    step = (last - start_min) / (updates + 1)
    messages = [alert(f"{name}.0", start_min, episode=name, **kwargs)]
    for i in range(1, updates + 1):
        messages.append(
            alert(f"{name}.{i}", start_min + i * step, episode=name, phase=Phase.UPDATE, **kwargs)
        )
    if end_min is not None:
        messages.append(alert(f"{name}.end", end_min, episode=name, phase=Phase.END, **kwargs))
    return messages


def feed(
    engine: DedupEngine, messages: list[Alert], position: Position | None = HOME
) -> list[DedupResult]:
    return [engine.add(m, position) for m in messages]


@pytest.fixture
def engine() -> DedupEngine:
    return DedupEngine(POLICIES, lateness=LATENESS)


# -- merging ---------------------------------------------------------------------------------


def test_thirty_alerts_about_one_spot_are_one_incident(engine: DedupEngine) -> None:
    """Ten episodes of start, update and end at one spot make one incident of 30 alerts."""
    messages = [m for i in range(10) for m in episode(f"car{i}", 3 * i, 3 * i + 2)]
    results = feed(engine, messages)
    incident = results[0].incident
    assert all(r.incident is incident for r in results)
    assert incident.alert_ids == [m.id for m in messages]
    assert len(incident.alert_ids) == 30
    assert incident.id == "inc.car0.0"
    assert [r.created for r in results].count(True) == 1
    assert all(r.merged for r in results[1:])
    assert incident.episodes == {f"car{i}" for i in range(10)}
    assert incident.open_episodes == set()


def test_two_cameras_and_a_drone_on_one_plume_are_one_incident(engine: DedupEngine) -> None:
    """Smoke seen by two cameras and a drone within 300 m is one fire with three sources."""
    smoke: dict[str, Any] = {"kind": AlertKind.SMOKE}
    first = engine.add(alert("camA.1", 0, device="cam-a", **smoke), HOME)
    second = engine.add(alert("camB.1", 1, device="cam-b", **smoke), offset(HOME, east_m=220))
    drone = alert("uav.1", 4, device="dock-1", device_kind=DeviceKind.DOCK, **smoke)
    third = engine.add(drone, offset(HOME, north_m=150, east_m=-120))
    assert first.created and second.merged and third.merged
    incident = first.incident
    assert second.incident is incident and third.incident is incident
    assert incident.sources == {"demo/camera/cam-a", "demo/camera/cam-b", "demo/dock/dock-1"}
    assert incident.position == HOME  # the first sighting anchors the incident
    assert len(engine.open_incidents()) == 1


def test_two_parked_cars_50_m_apart_are_two_incidents(engine: DedupEngine) -> None:
    """Parking 50 m apart with a 15 m radius is two problems."""
    a = engine.add(alert("carA", 0), HOME)
    b = engine.add(alert("carB", 1), offset(HOME, east_m=50))
    assert a.created and b.created
    assert a.incident is not b.incident
    assert len(engine.open_incidents()) == 2


@pytest.mark.parametrize(
    ("kind", "distance", "merged"),
    [
        (AlertKind.ILLEGAL_PARKING, 10, True),
        (AlertKind.ILLEGAL_PARKING, 14.5, True),
        (AlertKind.ILLEGAL_PARKING, 15.5, False),
        (AlertKind.STREET_VENDING, 29, True),
        (AlertKind.STREET_VENDING, 31, False),
        (AlertKind.WATERLOGGING, 95, True),
        (AlertKind.WATERLOGGING, 105, False),
        (AlertKind.SMOKE, 290, True),
        (AlertKind.SMOKE, 310, False),
    ],
)
def test_merging_depends_on_the_kinds_radius(
    engine: DedupEngine, kind: AlertKind, distance: float, merged: bool
) -> None:
    """A second sighting merges exactly when it is within its kind's radius."""
    engine.add(alert("a", 0, kind=kind), HOME)
    result = engine.add(alert("b", 1, kind=kind, device="cam-2"), offset(HOME, east_m=distance))
    assert result.merged is merged


@pytest.mark.parametrize(
    ("second_at_min", "recurrence", "outcome"),
    [
        (-39, "new_linked", "merge"),  # its own episode (window + quiet = 40 min) is alive at 0
        (-41, "new_linked", "new"),
        (-41, "reopen", "merge"),  # in order, the later one would be its recurrence
        (10, "new_linked", "merge"),
        (41, "new_linked", "merge"),  # more than the window after the last message: alive
        (49, "new_linked", "merge"),
        (51, "new_linked", "linked"),  # past the deadline (10 + 30 + 10): a recurrence
        (51, "reopen", "reopened"),
    ],
)
def test_merging_depends_on_the_life_of_the_incident(
    second_at_min: float, recurrence: Literal["reopen", "new_linked"], outcome: str
) -> None:
    """A new episode joins an incident alive at its time (open episode: last + window +
    quiet), whatever the gap since the incident's last message; later it is a recurrence."""
    policy = DedupPolicy(radius_m=15, window=minutes(30), recurrence=recurrence)
    engine = DedupEngine({AlertKind.ILLEGAL_PARKING: policy}, lateness=LATENESS)
    feed(engine, [alert("a.0", 0, episode="a"), alert("a.1", 10, episode="a", phase=Phase.UPDATE)])
    result = engine.add(alert("b", second_at_min, device="cam-2"), HOME)
    got = (
        "reopened" if result.reopened
        else "merge" if result.merged
        else "linked" if result.incident.recurrence_of == "inc.a.0"
        else "new"
    )  # fmt: skip
    assert got == outcome


def test_alerts_of_another_kind_never_merge(engine: DedupEngine) -> None:
    """Vending next to a parked car is its own incident."""
    engine.add(alert("car", 0), HOME)
    vending = engine.add(alert("stall", 1, kind=AlertKind.STREET_VENDING), HOME)
    assert vending.created


def test_the_nearest_open_incident_takes_the_alert(engine: DedupEngine) -> None:
    """Within reach of two incidents, an alert joins the nearer one."""
    engine.add(alert("a", 0), HOME)
    near = engine.add(alert("b", 1), offset(HOME, east_m=20)).incident
    result = engine.add(alert("c", 2), offset(HOME, east_m=12))
    assert result.incident is near


def test_lifecycle_messages_of_one_episode_stay_together_wherever_they_are(
    engine: DedupEngine,
) -> None:
    """An episode's updates join its incident even from far away (a drone on the move)."""
    first = engine.add(alert("uav.0", 0, episode="uav"), HOME)
    moved = engine.add(
        alert("uav.1", 1, episode="uav", phase=Phase.UPDATE), offset(HOME, north_m=500)
    )
    assert moved.incident is first.incident and moved.merged


@pytest.mark.parametrize(
    ("north_m", "east_m"),
    [(-2.0, 0.0), (2.0, 0.0), (0.0, -2.0), (0.0, 2.0), (-2.0, -2.0), (2.0, 2.0)],
)
def test_alerts_on_either_side_of_a_grid_cell_border_merge(north_m: float, east_m: float) -> None:
    """Two sightings 4–6 m apart in neighbouring index cells are one incident."""
    rules = DedupEngine(POLICIES)._rules[AlertKind.ILLEGAL_PARKING]
    row, col = rules.open.cell(HOME.lat, HOME.lon)
    corner = Position((row + 1) * rules.open.dlat, (col + 1) * rules.open._row_dlon(row + 1))
    here, there = offset(corner, north_m, east_m), offset(corner, -north_m, -east_m)
    assert rules.open.cell(here.lat, here.lon) != rules.open.cell(there.lat, there.lon)
    engine = DedupEngine(POLICIES)
    engine.add(alert("a", 0), here)
    assert engine.add(alert("b", 1, device="cam-2"), there).merged


@settings(max_examples=200, deadline=None)
@given(
    lat=st.floats(-70, 70),
    lon=st.floats(-179, 179),
    bearing=st.floats(0, 2 * math.pi),
    fraction=st.floats(0, 0.98),
    kind=st.sampled_from([AlertKind.ILLEGAL_PARKING, AlertKind.SMOKE, AlertKind.WATERLOGGING]),
)
def test_any_two_sightings_within_the_radius_merge_wherever_cell_borders_fall(
    lat: float, lon: float, bearing: float, fraction: float, kind: AlertKind
) -> None:
    """Within the radius merges and beyond it does not, anywhere on the grid."""
    radius = POLICIES[kind].radius_m
    origin = Position(lat, lon)
    engine = DedupEngine(POLICIES)
    engine.add(alert("a", 0, kind=kind), origin)
    d = fraction * radius
    near = offset(origin, d * math.cos(bearing), d * math.sin(bearing))
    assert distance_m(lat, lon, near.lat, near.lon) <= radius
    assert engine.add(alert("b", 1, kind=kind), near).merged
    far_d = radius * (1.02 + fraction)
    far = offset(origin, far_d * math.cos(bearing), far_d * math.sin(bearing))
    assert engine.add(alert("c", 2, kind=kind), far).created


def test_equirectangular_distance_agrees_with_haversine_at_dedup_radii() -> None:
    """The fast distance is within 0.1 % of the great-circle one up to 5 km."""
    for north, east in [(15, 0), (0, 300), (3000, 4000), (-100, 100)]:
        p = offset(HOME, north, east)
        lat1, lon1, lat2, lon2 = map(math.radians, (HOME.lat, HOME.lon, p.lat, p.lon))
        h = (
            math.sin((lat2 - lat1) / 2) ** 2
            + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
        )
        great_circle = 2 * 6_371_008.8 * math.asin(math.sqrt(h))
        assert distance_m(HOME.lat, HOME.lon, p.lat, p.lon) == pytest.approx(great_circle, rel=1e-3)


# -- per device --------------------------------------------------------------------------------


def test_device_faults_dedup_per_device_even_at_one_spot(engine: DedupEngine) -> None:
    """Two devices on one pole each get their own fault incident; repeats of one merge."""
    fault: dict[str, Any] = {"kind": AlertKind.DEVICE_FAULT}
    a = engine.add(alert("fa", 0, device="cam-a", **fault), HOME)
    b = engine.add(alert("fb", 1, device="cam-b", **fault), HOME)
    again = engine.add(alert("fa2", 2, device="cam-a", **fault), offset(HOME, east_m=50))
    assert a.created and b.created
    assert again.incident is a.incident


def test_alerts_without_a_position_dedup_per_device(engine: DedupEngine) -> None:
    """With no position, only the same device's alerts merge."""
    a = engine.add(alert("a", 0, device="cam-a"), None)
    b = engine.add(alert("b", 1, device="cam-b"), None)
    again = engine.add(alert("c", 2, device="cam-a"), None)
    assert a.created and b.created
    assert again.incident is a.incident
    assert a.incident.position is None


# -- closing, aging out and reopening -------------------------------------------------------


def test_an_incident_closes_a_quiet_period_after_its_last_episode_ended(
    engine: DedupEngine,
) -> None:
    """Closed at last activity + quiet, once now − lateness has passed it, not before."""
    incident = feed(engine, episode("car", 0, 5))[0].incident
    closes_at = T0 + minutes(5) + PARKING.quiet
    assert engine.expire(closes_at + LATENESS - timedelta(seconds=1)) == []
    assert engine.expire(closes_at + LATENESS) == [incident]
    assert incident.state == "closed"
    assert incident.closed_at == closes_at
    assert incident.attributes["closed_by"] == "ended"
    assert engine.open_incidents() == []


def test_an_incident_stays_open_while_any_episode_is_open(engine: DedupEngine) -> None:
    """One ended episode does not close an incident another episode keeps open."""
    feed(engine, [*episode("a", 0, 5), alert("b.0", 2, episode="b")])
    assert engine.expire(T0 + minutes(5) + PARKING.quiet + LATENESS) == []
    assert len(engine.open_incidents()) == 1


def test_an_incident_without_an_end_ages_out(engine: DedupEngine) -> None:
    """No message for window + quiet closes it even though the gateway never sent the end."""
    incident = feed(engine, episode("car", 0, None, updates=1))[0].incident
    last = incident.last_activity
    ages_out_at = last + PARKING.window + PARKING.quiet
    assert engine.expire(ages_out_at + LATENESS - timedelta(seconds=1)) == []
    assert engine.expire(ages_out_at + LATENESS) == [incident]
    assert incident.closed_at == ages_out_at
    assert incident.attributes["closed_by"] == "aged_out"
    assert incident.open_episodes == set()


def test_activity_postpones_closing(engine: DedupEngine) -> None:
    """A later merge moves the deadline: expire then closes at the new deadline."""
    feed(engine, episode("a", 0, 5))
    feed(engine, episode("b", 8, 12))
    assert engine.expire(T0 + minutes(5) + PARKING.quiet + LATENESS) == []
    assert len(engine.expire(T0 + minutes(12) + PARKING.quiet + LATENESS)) == 1


def test_a_recurrence_within_the_reopen_window_reopens_the_incident(engine: DedupEngine) -> None:
    """复发: the same problem again within 24 h reopens its work order."""
    incident = feed(engine, episode("car1", 0, 5))[0].incident
    engine.expire(T0 + timedelta(hours=1))
    result = engine.add(alert("car2", 180), offset(HOME, east_m=5))
    assert result.reopened and result.merged and not result.created
    assert result.incident is incident
    assert incident.state == "open" and incident.closed_at is None
    assert incident.reopen_count == 1
    assert "closed_by" not in incident.attributes


def test_a_recurrence_after_the_reopen_window_opens_a_new_incident(engine: DedupEngine) -> None:
    """Past the reopen window the same spot is a new problem."""
    old = feed(engine, episode("car1", 0, 5))[0].incident
    engine.expire(T0 + timedelta(hours=1))
    assert old.closed_at == T0 + minutes(5) + PARKING.quiet
    later = old.closed_at + PARKING.reopen + minutes(1)
    result = engine.add(alert("car2", (later - T0) / minutes(1)), HOME)
    assert result.created and result.incident is not old
    assert old.reopen_count == 0


def test_a_recurrence_reopens_by_event_time_before_the_timer_ran(engine: DedupEngine) -> None:
    """Whether expire ran or not, an alert after the deadline finds the incident closed."""
    incident = feed(engine, episode("car1", 0, 5))[0].incident
    result = engine.add(alert("car2", 60), HOME)
    assert result.reopened and result.incident is incident
    assert incident.reopen_count == 1
    assert engine.expire(T0 + minutes(61)) == []


def test_a_late_end_after_aging_out_closes_without_reopening(engine: DedupEngine) -> None:
    """An end arriving long after the incident aged out attaches and leaves it closed."""
    incident = feed(engine, episode("car", 0, None, updates=0))[0].incident
    late_end = engine.add(alert("car.end", 120, episode="car", phase=Phase.END), HOME)
    assert late_end.incident is incident and not late_end.reopened
    assert incident.state == "closed"
    assert incident.closed_at == T0 + PARKING.window + PARKING.quiet
    assert incident.last_activity == T0
    assert engine.expire(T0 + minutes(121)) == [incident]  # reported once, by the next call
    assert engine.expire(T0 + minutes(122)) == []


def test_a_late_update_of_an_aged_out_episode_reopens_it(engine: DedupEngine) -> None:
    """The problem is still there: an update after the age-out reopens the incident."""
    incident = feed(engine, episode("car", 0, None, updates=0))[0].incident
    engine.expire(T0 + timedelta(hours=2))
    result = engine.add(alert("car.1", 150, episode="car", phase=Phase.UPDATE), HOME)
    assert result.reopened and incident.state == "open"
    assert incident.open_episodes == {"car"}


# -- arrival order and duplicates -------------------------------------------------------------


def test_an_update_before_its_start_joins_the_same_incident(engine: DedupEngine) -> None:
    """Out of order: the update opens the incident, the late start joins it."""
    update = engine.add(alert("car.1", 2, episode="car", phase=Phase.UPDATE), HOME)
    start = engine.add(alert("car.0", 0, episode="car"), HOME)
    assert update.created and start.merged
    assert start.incident is update.incident
    assert update.incident.opened_at == T0
    assert update.incident.open_episodes == {"car"}


def test_an_end_before_its_start_leaves_the_episode_ended(engine: DedupEngine) -> None:
    """A start arriving after its own end does not reopen the episode."""
    engine.add(alert("car.end", 3, episode="car", phase=Phase.END), HOME)
    start = engine.add(alert("car.0", 0, episode="car"), HOME)
    assert start.incident.open_episodes == set()
    assert start.incident.episodes == {"car"}


@pytest.mark.parametrize("close_first", [False, True])
def test_a_resent_alert_is_ignored(engine: DedupEngine, close_first: bool) -> None:
    """A duplicate id changes nothing and says so, open or closed."""
    messages = episode("car", 0, 5)
    first = feed(engine, messages)
    if close_first:
        engine.expire(T0 + timedelta(hours=1))
    again = engine.add(messages[1], HOME)
    assert again.duplicate and not (again.created or again.merged or again.reopened)
    assert again.incident is first[0].incident
    assert again.incident.alert_ids == [m.id for m in messages]


# -- summary fields --------------------------------------------------------------------------


def test_an_incident_keeps_the_peak_depth_and_the_latest_level(engine: DedupEngine) -> None:
    """Waterlogging keeps its deepest reading and the level of its latest message."""
    water: dict[str, Any] = {
        "kind": AlertKind.WATERLOGGING,
        "device": "wl-1",
        "device_kind": DeviceKind.SENSOR,
    }
    readings = [
        ("wl.0", 0, Phase.START, 16.0, "lane", 0.9),
        ("wl.2", 20, Phase.END, 3.0, "dry", 1.0),
        ("wl.1", 10, Phase.UPDATE, 32.0, "underpass_closure", 0.95),  # arrives late
    ]
    for alert_id, at, phase, depth, level, confidence in readings:
        result = engine.add(
            alert(
                alert_id,
                at,
                episode="wl",
                phase=phase,
                confidence=confidence,
                attributes={"depth_cm": depth, "level": level},
                **water,
            ),
            HOME,
        )
    incident = result.incident
    assert incident.attributes["peak_depth_cm"] == 32.0
    assert incident.level == "dry"
    assert incident.attributes["depth_cm"] == 3.0
    assert incident.max_confidence == 1.0
    assert incident.last_activity == T0 + minutes(20)


def test_an_alert_of_a_kind_without_a_policy_is_refused() -> None:
    """A site config missing a kind's policy fails loudly, naming the key to add."""
    engine = DedupEngine({AlertKind.SMOKE: POLICIES[AlertKind.SMOKE]})
    with pytest.raises(MissingDedupPolicy, match=r"workflow\.dedup\.illegal_parking"):
        engine.add(alert("car", 0), HOME)


# -- restart and memory --------------------------------------------------------------------


def snapshot(incident: Incident) -> Incident:
    """A copy as the database would give it back."""
    return Incident(
        id=incident.id,
        kind=incident.kind,
        position=incident.position,
        opened_at=incident.opened_at,
        last_activity=incident.last_activity,
        closed_at=incident.closed_at,
        state=incident.state,
        episodes=set(incident.episodes),
        open_episodes=set(incident.open_episodes),
        alert_ids=list(incident.alert_ids),
        sources=set(incident.sources),
        reopen_count=incident.reopen_count,
        max_confidence=incident.max_confidence,
        attributes=dict(incident.attributes),
    )


def test_a_restarted_engine_continues_from_restored_incidents(engine: DedupEngine) -> None:
    """After restore, episodes continue, resends are duplicates and recurrences reopen."""
    open_one = feed(engine, episode("car", 0, None), offset(HOME, east_m=200))[0].incident
    closed_one = feed(engine, episode("old", 0, 5))[0].incident
    engine.expire(T0 + minutes(25))
    assert closed_one.state == "closed" and open_one.state == "open"

    fresh = DedupEngine(POLICIES, lateness=LATENESS)
    fresh.restore([snapshot(open_one), snapshot(closed_one)])
    assert [i.id for i in fresh.open_incidents()] == [open_one.id]
    update = fresh.add(alert("car.9", 30, episode="car", phase=Phase.UPDATE), None)
    assert update.incident.id == open_one.id and update.merged
    assert fresh.add(alert("old.0", 0, episode="old"), HOME).duplicate
    recurrence = fresh.add(alert("new", 40), offset(HOME, north_m=3))
    assert recurrence.reopened and recurrence.incident.id == closed_one.id


def test_forgetting_drops_closed_incidents_once_they_cannot_reopen(engine: DedupEngine) -> None:
    """forget_closed_before(now − reopen) drops what closed before it, never open ones."""
    closed = feed(engine, episode("old", 0, 5))[0].incident
    feed(engine, episode("open", 0, None), offset(HOME, east_m=500))
    engine.expire(T0 + minutes(25))
    assert closed.closed_at is not None
    now = closed.closed_at + PARKING.reopen
    assert engine.forget_closed_before(now - PARKING.reopen) == 0
    assert engine.forget_closed_before(now + minutes(1) - PARKING.reopen) == 1
    assert len(engine.open_incidents()) == 1
    again = engine.add(alert("old.0", 2000, episode="old"), HOME)
    assert again.created  # the forgotten incident's ids are free again


# -- properties -------------------------------------------------------------------------------

_messages = st.lists(
    st.tuples(
        st.integers(0, 40),  # alert id (small pool: resends happen)
        st.integers(0, 12),  # episode
        st.sampled_from([AlertKind.ILLEGAL_PARKING, AlertKind.SMOKE]),
        st.sampled_from(list(Phase)),
        st.integers(0, 600),  # minutes after T0
        st.integers(-3, 3),  # metres × 10 east of HOME
        st.booleans(),  # run the timer before this message
    ),
    max_size=60,
)


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(_messages)
def test_every_alert_id_lands_in_exactly_one_incident(
    messages: list[tuple[int, int, AlertKind, Phase, int, int, bool]],
) -> None:
    """Whatever the order, kinds, phases and resends, each id is in one incident, once
    (incidents folded into another by late data hand their ids over)."""
    engine = DedupEngine(POLICIES, lateness=LATENESS)
    incidents: dict[str, Incident] = {}
    seen: set[str] = set()
    for n, (aid, ep, kind, phase, at, east, tick) in enumerate(messages):
        if tick:
            engine.expire(T0 + minutes(at))
        result = engine.add(
            alert(f"a{aid}", at, episode=f"e{ep}", phase=phase, kind=kind, device=f"cam{n % 3}"),
            offset(HOME, east_m=10 * east),
        )
        assert result.duplicate is (f"a{aid}" in seen)
        assert result.created + result.merged + result.duplicate == 1
        seen.add(f"a{aid}")
        incidents[result.incident.id] = result.incident
        for gone in result.absorbed:
            incidents.pop(gone.id, None)
            assert gone.merged_into == result.incident.id
    live = [inc for inc in incidents.values() if inc.merged_into is None]
    assert len(live) == len(incidents)
    placed = [aid for inc in incidents.values() for aid in inc.alert_ids]
    assert sorted(placed) == sorted(seen)
    episodes = [ep for inc in incidents.values() for ep in inc.episodes]
    assert len(episodes) == len(set(episodes))
    for inc in incidents.values():
        assert inc.open_episodes <= inc.episodes
        assert inc.state == "open" or not inc.open_episodes
