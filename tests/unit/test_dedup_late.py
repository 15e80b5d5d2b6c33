"""Dedup that holds under outages, late backlogs, silent plateaus and noisy positions (issue 18).

Each finding of the issue is a test here that failed on the engine before it: a gap shorter
than an incident's life no longer splits it, a late backlog is placed the same whichever of
its messages comes first, the incident's position is a robust centre of its sightings, and
recurrence is per kind.
"""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citywatch.config.workflow import DedupPolicy
from citywatch.contracts import Alert, AlertKind, DeviceKind, Location, Phase
from citywatch.stream.dedup import DedupEngine, DedupResult
from citywatch.stream.incident import sighting_weight, weighted_median
from tests.unit.test_dedup import HOME, LATENESS, POLICIES, T0, alert, episode, minutes, offset

WATER: dict[str, object] = {"kind": AlertKind.WATERLOGGING, "device_kind": DeviceKind.SENSOR}
WATERLOGGING = POLICIES[AlertKind.WATERLOGGING]  # radius 100 m, window 60 min, quiet 20 min
LINKED = {  # parking as the demo district ships it: a recurrence is a new linked order
    **POLICIES,
    AlertKind.ILLEGAL_PARKING: DedupPolicy(
        radius_m=15, window=minutes(30), recurrence="new_linked"
    ),
}


def partition(results: list[DedupResult]) -> set[frozenset[str]]:
    """The alerts grouped by the incident each ended in (folded incidents left out)."""
    final = {r.incident.id: r.incident for r in results}
    for r in results:
        for gone in r.absorbed:
            final.pop(gone.id, None)
    return {frozenset(inc.alert_ids) for inc in final.values() if inc.merged_into is None}


# -- finding 1: a gap shorter than the incident's life never splits it ------------------------


@pytest.mark.parametrize("gap_min", [30, 55, 65, 75, 79, 81, 85, 91, 120])
def test_a_second_sensor_joins_the_same_order_whatever_the_gap(gap_min: float) -> None:
    """Two sensors 40 m apart on one flood: B starting any time before A's deadline joins A's
    incident, and after it recurs on A — never a second order (the issue's reproduction)."""
    engine = DedupEngine(POLICIES, lateness=LATENESS)
    a = [
        alert("A.0", 0, episode="A", device="wl-a", **WATER),  # type: ignore[arg-type]
        alert("A.1", 10, episode="A", phase=Phase.UPDATE, device="wl-a", **WATER),  # type: ignore[arg-type]
    ]
    results = [engine.add(m, HOME) for m in a]
    first = results[0].incident
    b = alert("B.0", 10 + gap_min, episode="B", device="wl-b", **WATER)  # type: ignore[arg-type]
    result = engine.add(b, offset(HOME, east_m=40))
    assert not result.created
    assert result.incident is first
    deadline_min = 10 + 60 + 20
    assert result.reopened is (10 + gap_min >= deadline_min)


def test_joining_or_recurring_is_monotonic_in_time() -> None:
    """As B's start moves later, the outcome goes merge → recurrence and never back."""
    outcomes = []
    for gap in range(0, 200, 5):
        engine = DedupEngine(POLICIES, lateness=LATENESS)
        engine.add(alert("A.0", 0, episode="A", device="wl-a", **WATER), HOME)  # type: ignore[arg-type]
        b = alert("B.0", gap, episode="B", device="wl-b", **WATER)  # type: ignore[arg-type]
        result = engine.add(b, offset(HOME, east_m=40))
        outcomes.append("new" if result.created else "reopen" if result.reopened else "merge")
    assert "new" not in outcomes
    first_reopen = outcomes.index("reopen")
    assert set(outcomes[first_reopen:]) == {"reopen"}


# -- finding 3: a late backlog is placed the same whatever arrives first -----------------------


def outage_stream() -> tuple[list[Alert], list[Alert]]:
    """A gateway's episode at the spot from 0 to 45 min (held in its outbox by a 45-minute
    outage) and a live camera's episode at the same spot from 50 min."""
    backlog = episode("gw", 0, 45, updates=4, device="cam-gw")
    live = episode("live", 50, 70, updates=2, device="cam-live")
    return backlog, live


@pytest.mark.parametrize("first", ["start", "update", "end"])
def test_a_late_backlog_joins_the_live_incident_whichever_message_arrives_first(
    first: str,
) -> None:
    """The outage's episode arriving after the live one, any of its messages first: one
    incident, the live one (its work order is the one people act on)."""
    backlog, live = outage_stream()
    lead = {"start": 0, "update": 3, "end": len(backlog) - 1}[first]
    arrival = [*live, backlog[lead], *(m for i, m in enumerate(backlog) if i != lead)]
    engine = DedupEngine(POLICIES, lateness=LATENESS)
    results = [engine.add(m, HOME) for m in arrival]
    groups = partition(results)
    assert groups == {frozenset(m.id for m in backlog + live)}
    survivor = results[-1].incident
    assert survivor.id == "inc.live.0"
    assert survivor.opened_at == T0
    assert survivor.state == "open" or survivor.attributes.get("closed_by") != "merged"


def test_a_folded_incident_is_reported_with_its_alerts_and_the_survivor() -> None:
    """The incident late data folds away names the survivor and keeps its alert ids, so the
    caller can move them; it is closed as merged, never deleted."""
    backlog, live = outage_stream()
    engine = DedupEngine(LINKED, lateness=LATENESS)
    for m in live:
        engine.add(m, HOME)
    results = [engine.add(m, HOME) for m in backlog]
    absorbed = [inc for r in results for inc in r.absorbed]
    assert len(absorbed) == 1
    gone = absorbed[0]
    assert gone.merged_into == "inc.live.0"
    assert gone.state == "closed" and gone.attributes["closed_by"] == "merged"
    assert set(gone.alert_ids) <= set(results[-1].incident.alert_ids)
    assert results[0].created  # the backlog's start opened it before the update showed it
    assert [i.id for i in engine.open_incidents()] == ["inc.live.0"]


def test_late_data_never_folds_incidents_that_did_not_overlap() -> None:
    """Under new_linked, a backlog that ended before the live incident opened, past its
    deadline, stays apart (in order it would have been a new linked order too)."""
    engine = DedupEngine(LINKED, lateness=LATENESS)
    for m in episode("live", 120, 130, device="cam-live"):
        engine.add(m, HOME)
    results = [engine.add(m, HOME) for m in episode("gw", 0, 5, device="cam-gw")]
    assert not any(r.absorbed for r in results)
    assert len(partition(results)) == 1 and results[0].created


def test_under_reopen_a_late_earlier_episode_is_the_same_problem() -> None:
    """Under reopen, an episode that ended two hours before the live one is its recurrence
    in order, so arriving late it joins the live incident too."""
    live, backlog = (
        episode("live", 120, 130, device="cam-live"),
        episode("gw", 0, 5, device="cam-gw"),
    )
    in_order = DedupEngine(POLICIES, lateness=LATENESS)
    expected = partition([in_order.add(m, HOME) for m in backlog + live])
    assert len(expected) == 1
    engine = DedupEngine(POLICIES, lateness=LATENESS)
    assert partition([engine.add(m, HOME) for m in live + backlog]) == expected


def test_in_order_streams_never_fold() -> None:
    """Folding is for late data only: the same stream in event-time order folds nothing."""
    backlog, live = outage_stream()
    engine = DedupEngine(POLICIES, lateness=LATENESS)
    ordered = sorted(backlog + live, key=lambda m: m.event_time)
    results = [engine.add(m, HOME) for m in ordered]
    assert not any(r.absorbed for r in results)
    assert len(partition(results)) == 1


# -- finding 4: the incident's position is a robust centre ---------------------------------


def test_a_badly_projected_first_sighting_does_not_split_one_car() -> None:
    """Camera A's first box projects 8 m east, its next ones near the car; camera B sees the
    car 8 m west: 16 m from the first sighting, but within 15 m of the median centre."""
    engine = DedupEngine(POLICIES, lateness=LATENESS)
    a_positions = [8.0, 0.5, -0.5, 1.0]
    for i, east in enumerate(a_positions):
        phase = Phase.START if i == 0 else Phase.UPDATE
        engine.add(alert(f"A.{i}", i, episode="A", phase=phase), offset(HOME, east_m=east))
    result = engine.add(alert("B.0", 5, episode="B", device="cam-2"), offset(HOME, east_m=-8))
    assert result.merged and not result.created
    centre = result.incident.position
    assert centre is not None
    assert abs((centre.lon - HOME.lon) * 95_000) < 2  # within a couple of metres of the car


def test_an_exact_sensor_outweighs_a_drone_in_the_centre() -> None:
    """Sensors are exact and drones tens of metres off: one sensor reading holds the centre
    against two drone sightings."""
    engine = DedupEngine(POLICIES, lateness=LATENESS)
    engine.add(alert("s", 0, device="wl-1", **WATER), HOME)  # type: ignore[arg-type]
    for i in range(2):
        drone = alert(f"d{i}", 1 + i, kind=AlertKind.WATERLOGGING, device_kind=DeviceKind.DOCK)
        result = engine.add(drone, offset(HOME, north_m=60))
    assert result.incident.position == HOME


def test_an_alerts_own_accuracy_sets_its_weight() -> None:
    """``location.accuracy_m`` overrides the device kind's accuracy; exact never divides by 0."""
    camera = alert("c", 0)
    assert sighting_weight(camera) == pytest.approx(1 / 3)
    sharp = camera.model_copy(update={"location": Location(zone="z", accuracy_m=0.0)})
    assert sighting_weight(sharp) == 2.0
    assert weighted_median({1.0: 1.0, 2.0: 1.0, 3.0: 5.0}) == 3.0
    assert weighted_median({1.0: 1.0, 2.0: 1.0}) == 1.5  # two sightings: halfway


# -- finding 5: recurrence per kind -------------------------------------------------------------


def test_new_linked_recurrence_opens_a_new_incident_linked_to_the_previous() -> None:
    """A vendor back the next evening is a new incident naming yesterday's as its 复发."""
    policies = dict(POLICIES)
    policies[AlertKind.STREET_VENDING] = DedupPolicy(
        radius_m=30, window=minutes(60), recurrence="new_linked"
    )
    engine = DedupEngine(policies, lateness=LATENESS)
    vending: dict[str, object] = {"kind": AlertKind.STREET_VENDING}
    results = [engine.add(m, HOME) for m in episode("d1", 0, 120, **vending)]  # type: ignore[arg-type]
    yesterday = results[0].incident
    engine.expire(T0 + timedelta(hours=4))
    assert yesterday.state == "closed"
    today = engine.add(alert("d2", 22 * 60, **vending), offset(HOME, east_m=5))  # type: ignore[arg-type]
    assert today.created and not today.reopened
    assert today.incident is not yesterday
    assert today.incident.recurrence_of == yesterday.id
    assert yesterday.state == "closed" and yesterday.reopen_count == 0


def test_new_linked_recurrence_closes_a_due_incident_and_reports_it() -> None:
    """A recurrence past a still-open incident's deadline closes it (reported by expire) and
    links the new one to it."""
    policies = {
        AlertKind.STREET_VENDING: DedupPolicy(
            radius_m=30, window=minutes(60), recurrence="new_linked"
        )
    }
    engine = DedupEngine(policies, lateness=LATENESS)
    vending: dict[str, object] = {"kind": AlertKind.STREET_VENDING}
    old = engine.add(alert("d1", 0, **vending), HOME).incident  # type: ignore[arg-type]
    new = engine.add(alert("d2", 200, **vending), HOME)  # type: ignore[arg-type]
    assert new.created and new.incident.recurrence_of == old.id
    assert engine.expire(T0 + minutes(201)) == [old]


def test_reopen_recurrence_stays_the_default() -> None:
    """Without a recurrence setting the same order reopens, as before."""
    assert DedupPolicy(radius_m=1, window=minutes(1)).recurrence == "reopen"


def test_shipped_defaults_link_parking_and_vending_and_reopen_water() -> None:
    """Parking and vending recur as new linked cases; water, smoke and faults reopen."""
    from citywatch.config.workflow import _default_dedup

    defaults = _default_dedup()
    assert defaults[AlertKind.ILLEGAL_PARKING].recurrence == "new_linked"
    assert defaults[AlertKind.STREET_VENDING].recurrence == "new_linked"
    assert defaults[AlertKind.WATERLOGGING].recurrence == "reopen"
    assert defaults[AlertKind.SMOKE].recurrence == "reopen"


# -- a shuffled outage, by seed -----------------------------------------------------------------


@pytest.mark.parametrize("seed", range(20))
def test_a_shuffled_backlog_gives_the_in_order_partition(seed: int) -> None:
    """The outage stream's backlog in any order after the live alerts: the in-order partition."""
    backlog, live = outage_stream()
    rng = random.Random(seed)
    shuffled = backlog[:]
    rng.shuffle(shuffled)
    in_order = DedupEngine(POLICIES, lateness=LATENESS)
    expected = partition(
        [in_order.add(m, HOME) for m in sorted(backlog + live, key=lambda m: m.event_time)]
    )
    engine = DedupEngine(POLICIES, lateness=LATENESS)
    assert partition([engine.add(m, HOME) for m in [*live, *shuffled]]) == expected


# -- property: arrival order within the lateness bound does not change the partition --------

SPOTS = {"d0": HOME, "d1": HOME, "d2": offset(HOME, east_m=5), "d3": offset(HOME, east_m=200)}
UPDATE_EVERY_MIN = 10  # under every window: sensors and cameras refresh a held condition

_episodes = st.lists(
    st.tuples(
        st.sampled_from(sorted(SPOTS)),  # device
        st.integers(0, 600),  # start, minutes after T0
        st.integers(0, 90),  # duration in minutes
    ),
    min_size=1,
    max_size=8,
)


def stream_of(episodes: list[tuple[str, int, int]], kind: AlertKind) -> list[Alert]:
    """Each episode as start, an update every 10 minutes and end, in event-time order."""
    messages: list[Alert] = []
    for n, (device, start, duration) in enumerate(episodes):
        name = f"{device}.e{n}"
        times = [*range(start, start + duration, UPDATE_EVERY_MIN), start + duration]
        for i, at in enumerate(times):
            phase = Phase.START if i == 0 else Phase.END if i == len(times) - 1 else Phase.UPDATE
            messages.append(
                alert(
                    f"{name}.{i}",
                    at + i / 1000,
                    episode=name,
                    phase=phase,
                    kind=kind,
                    device=device,
                )
            )
    return sorted(messages, key=lambda m: (m.event_time, m.id))


def live_partition(
    policies: dict[AlertKind, DedupPolicy], messages: list[Alert], delay_min: dict[str, int]
) -> set[frozenset[str]]:
    """The partition the live worker makes when each device's messages arrive ``delay_min``
    late (in their own order, as a gateway's outbox keeps it); its timer runs on arrival."""
    arrivals = sorted(
        messages,
        key=lambda m: (m.event_time + minutes(delay_min.get(m.device.id, 0)), m.id),
    )
    engine = DedupEngine(policies, lateness=LATENESS)
    results = []
    for m in arrivals:
        engine.expire(m.event_time + minutes(delay_min.get(m.device.id, 0)))
        results.append(engine.add(m, SPOTS[m.device.id]))
    return partition(results)


def coarser_or_equal(fine: set[frozenset[str]], coarse: set[frozenset[str]]) -> bool:
    """Whether every group of ``fine`` lies inside one group of ``coarse``."""
    return all(any(group <= big for big in coarse) for group in fine)


@settings(max_examples=300, deadline=None)
@given(
    episodes=_episodes,
    delays=st.dictionaries(st.sampled_from(sorted(SPOTS)), st.integers(0, 240)),
    kind=st.sampled_from([AlertKind.ILLEGAL_PARKING, AlertKind.WATERLOGGING]),
)
def test_gateways_hours_late_give_the_same_work_orders_when_recurrences_reopen(
    episodes: list[tuple[str, int, int]], delays: dict[str, int], kind: AlertKind
) -> None:
    """Gateways delayed by up to four hours (an outage, each keeping its own order): under
    ``reopen`` the alerts fall into the same work orders as when everything came on time."""
    policies = {kind: POLICIES[kind].model_copy(update={"recurrence": "reopen"})}
    messages = stream_of(episodes, kind)
    assert live_partition(policies, messages, delays) == live_partition(policies, messages, {})


@settings(max_examples=300, deadline=None)
@given(
    episodes=_episodes,
    delays=st.dictionaries(st.sampled_from(sorted(SPOTS)), st.integers(0, 240)),
    kind=st.sampled_from([AlertKind.ILLEGAL_PARKING, AlertKind.WATERLOGGING]),
)
def test_gateways_hours_late_never_split_a_work_order(
    episodes: list[tuple[str, int, int]], delays: dict[str, int], kind: AlertKind
) -> None:
    """Under ``new_linked`` too, late data never splits what came on time as one order (it
    may join a recurrence whose first alert arrived before the end that closed the order)."""
    policies = {kind: POLICIES[kind].model_copy(update={"recurrence": "new_linked"})}
    messages = stream_of(episodes, kind)
    on_time = live_partition(policies, messages, {})
    assert coarser_or_equal(on_time, live_partition(policies, messages, delays))


def test_two_cameras_on_one_car_fold_once_their_centres_settle() -> None:
    """Camera B's first box lands 18 m from A's: two incidents at first; as each gathers
    sightings their median centres agree on the car, and the younger folds into the older."""
    engine = DedupEngine(LINKED, lateness=LATENESS)
    a_east = [0.0, 1.0, -1.0, 0.5]
    b_east = [18.0, 2.0, 1.5, -0.5]
    results = []
    for i in range(4):
        phase = Phase.START if i == 0 else Phase.UPDATE
        a = alert(f"A.{i}", 2 * i, episode="A", phase=phase)
        b = alert(f"B.{i}", 2 * i + 1, episode="B", phase=phase, device="cam-2")
        results.append(engine.add(a, offset(HOME, east_m=a_east[i])))
        results.append(engine.add(b, offset(HOME, east_m=b_east[i])))
    assert results[1].created  # B's first box was out of reach
    assert partition(results) == {frozenset(f"{c}.{i}" for c in "AB" for i in range(4))}
    assert results[-1].incident.id == "inc.A.0"


def test_two_cars_twenty_metres_apart_stay_two_as_their_centres_settle() -> None:
    """Settled centres 20 m apart never fold (the fold needs them within half the radius)."""
    engine = DedupEngine(LINKED, lateness=LATENESS)
    results = []
    for i, (da, db) in enumerate([(0, 20), (3, 17), (-2, 22), (2, 18), (4, 16)]):
        phase = Phase.START if i == 0 else Phase.UPDATE
        results.append(
            engine.add(alert(f"A.{i}", 2 * i, episode="A", phase=phase), offset(HOME, east_m=da))
        )
        results.append(
            engine.add(
                alert(f"B.{i}", 2 * i + 1, episode="B", phase=phase, device="cam-2"),
                offset(HOME, east_m=db),
            )
        )
    assert len(partition(results)) == 2


def test_a_straggler_days_late_joins_its_closed_incident_past_the_reopen_window() -> None:
    """An alert inside a closed incident's life joins it however late it comes (the worker
    holds closed incidents for ``workflow.late_data``); it never recurs or opens a new one."""
    engine = DedupEngine(LINKED, lateness=LATENESS)
    results = [engine.add(m, HOME) for m in episode("car", 0, 20, updates=0)]
    car = results[0].incident
    engine.expire(T0 + timedelta(days=3))
    assert car.state == "closed"
    late = engine.add(alert("cam2.0", 10, episode="cam2", device="cam-2"), offset(HOME, east_m=3))
    assert late.merged and not late.reopened and late.incident is car
    assert car.state == "closed"


def test_late_data_is_held_a_week_by_default() -> None:
    """The outbox keeps a week's backlog; the stream holds closed incidents as long."""
    from citywatch.config.workflow import Workflow

    fields = Workflow.model_fields
    assert fields["late_data"].default == timedelta(days=7)
