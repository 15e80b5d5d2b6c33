"""Level logic for waterlogging sensors: depth conversion, hysteresis and min_duration."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from citywatch.config.sensor import DepthLevel, LevelPolicy
from citywatch.edge.sensor.levels import LevelChange, LevelTracker, depth_from_distance

T0 = datetime(2025, 7, 1, 8, 0, tzinfo=UTC)

# Default policy: lane 15 cm, underpass_closure 25 cm, closure 40 cm; hysteresis 2 cm; 30 s.
POLICY = LevelPolicy()


def run(readings: list[tuple[float, float]], policy: LevelPolicy = POLICY) -> list[LevelChange]:
    """Feed (seconds after T0, depth_cm) readings; return the confirmed changes."""
    tracker = LevelTracker(policy)
    changes = []
    for seconds, depth in readings:
        change = tracker.observe(T0 + timedelta(seconds=seconds), depth)
        if change is not None:
            changes.append(change)
    return changes


def every_5s(*segments: tuple[float, float]) -> list[tuple[float, float]]:
    """Readings every 5 s: each segment is (depth_cm, seconds it lasts)."""
    readings: list[tuple[float, float]] = []
    t = 0.0
    for depth, duration in segments:
        end = t + duration
        while t < end:
            readings.append((t, depth))
            t += 5
    return readings


def summary(changes: list[LevelChange]) -> list[tuple[str, str | None, str | None]]:
    return [(c.phase, c.previous, c.level) for c in changes]


# -- depth_from_distance --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("distance_mm", "expected"),
    [
        pytest.param(3000.0, 0.0, id="dry road reads zero"),
        pytest.param(2850.0, 15.0, id="15 cm of water"),
        pytest.param(3120.0, 0.0, id="longer than mount height clamps to zero"),
        pytest.param(200.0, 280.0, id="exactly at the blind zone is the deepest depth"),
        pytest.param(199.9, None, id="inside the blind zone is unreliable"),
        pytest.param(0.0, None, id="zero distance is inside the blind zone"),
        pytest.param(-5.0, None, id="negative distance is unreliable"),
        pytest.param(math.nan, None, id="NaN is unreliable"),
        pytest.param(math.inf, None, id="infinity is unreliable"),
    ],
)
def test_depth_from_distance_converts_clamps_and_rejects(
    distance_mm: float, expected: float | None
) -> None:
    """Depth is mount height minus distance, clamped, None for unreliable readings."""
    depth = depth_from_distance(distance_mm, mount_height_cm=300, blind_zone_cm=20)
    if expected is None:
        assert depth is None
    else:
        assert depth == pytest.approx(expected)


def test_depth_from_distance_with_zero_blind_zone_accepts_zero_distance() -> None:
    """Without a blind zone, water at the sensor face reads as the full mount height."""
    assert depth_from_distance(0.0, mount_height_cm=100, blind_zone_cm=0) == 100.0


@given(
    distance_mm=st.floats(allow_nan=True, allow_infinity=True),
    mount_height_cm=st.floats(min_value=1, max_value=2000),
    blind_zone_cm=st.floats(min_value=0, max_value=200),
)
def test_depth_from_distance_is_none_or_within_the_measurable_range(
    distance_mm: float, mount_height_cm: float, blind_zone_cm: float
) -> None:
    """Any input yields None or a depth between zero and mount height minus blind zone."""
    depth = depth_from_distance(distance_mm, mount_height_cm, blind_zone_cm)
    if depth is not None:
        assert 0.0 <= depth <= max(0.0, mount_height_cm - blind_zone_cm)


# -- LevelTracker: table of episodes --------------------------------------------------------

EPISODES = [
    pytest.param(every_5s((0, 120)), [], id="dry road stays dry"),
    pytest.param(
        every_5s((0, 10), (16, 60)),
        [("start", None, "lane")],
        id="depth held past min_duration starts the episode",
    ),
    pytest.param(
        every_5s((16, 25), (10, 60)),
        [],
        id="depth that recedes before min_duration raises nothing",
    ),
    pytest.param(
        every_5s((16, 60), (14, 20), (16, 20), (14, 20), (13.5, 20), (16, 20), (14, 60)),
        [("start", None, "lane")],
        id="chatter within hysteresis below a level never ends it",
    ),
    pytest.param(
        every_5s((16, 60), (13, 120)),
        [("start", None, "lane")],
        id="depth exactly at level minus hysteresis stays in the level",
    ),
    pytest.param(
        every_5s((16, 60), (12.9, 60)),
        [("start", None, "lane"), ("end", "lane", None)],
        id="depth below level minus hysteresis ends the episode",
    ),
    pytest.param(
        every_5s((0, 10), (26, 60)),
        [("start", None, "underpass_closure")],
        id="a jump from dry past the first level starts at the level reached",
    ),
    pytest.param(
        every_5s((16, 60), (26, 10), (41, 60)),
        [("start", None, "lane"), ("update", "lane", "closure")],
        id="a climb through two levels within min_duration is one update",
    ),
    pytest.param(
        every_5s((41, 60), (38.5, 60), (37.9, 60)),
        [("start", None, "closure"), ("update", "closure", "underpass_closure")],
        id="going down a level needs the hysteresis margin too",
    ),
    pytest.param(
        every_5s((41, 60), (5, 60)),
        [("start", None, "closure"), ("end", "closure", None)],
        id="falling from the top level to dry is one end",
    ),
    pytest.param(
        every_5s((16, 60), (5, 60), (17, 60)),
        [("start", None, "lane"), ("end", "lane", None), ("start", None, "lane")],
        id="a second rise after an end is a new episode",
    ),
    pytest.param(
        every_5s((16, 60), (12, 20), (16, 60)),
        [("start", None, "lane")],
        id="a dip below the level shorter than min_duration does not end it",
    ),
]


@pytest.mark.parametrize(("readings", "expected"), EPISODES)
def test_level_changes_follow_hysteresis_and_min_duration(
    readings: list[tuple[float, float]], expected: list[tuple[str, str | None, str | None]]
) -> None:
    """Each table row's readings confirm exactly the expected level changes."""
    assert summary(run(readings)) == expected


def test_depth_chatter_around_a_level_raises_one_alert() -> None:
    """±1 cm around 15 cm with hysteresis 2 confirms the level once and never flips back."""
    readings = [(5.0 * i, 16.0 if i % 2 else 14.0) for i in range(200)]
    readings[:8] = [(5.0 * i, 16.0) for i in range(8)]
    changes = run(readings)
    assert summary(changes) == [("start", None, "lane")]


def test_depth_chatter_from_dry_never_confirms_the_level() -> None:
    """Chatter that keeps dipping below the level restarts the wait, so nothing is raised."""
    readings = [(5.0 * i, 16.0 if i % 2 else 14.0) for i in range(200)]
    assert run(readings) == []


def test_start_reports_when_the_level_first_held_and_the_confirming_reading() -> None:
    """since is the first reading at the level; time is the reading min_duration later."""
    (change,) = run(every_5s((0, 10), (16, 60)))
    assert change.since == T0 + timedelta(seconds=10)
    assert change.time == T0 + timedelta(seconds=40)
    assert change.depth_cm == 16
    assert change.peak_depth_cm == 16


def test_changing_target_restarts_the_wait_for_the_new_level() -> None:
    """A rise to a higher level while the first is pending waits min_duration from there."""
    (change,) = run(every_5s((16, 20), (26, 60)))
    assert (change.phase, change.level) == ("start", "underpass_closure")
    assert change.since == T0 + timedelta(seconds=20)
    assert change.time == T0 + timedelta(seconds=50)


def test_peak_depth_covers_the_whole_episode() -> None:
    """peak_depth_cm grows with the water and the end reports the episode's deepest reading."""
    changes = run(every_5s((16, 40), (33, 40), (27, 40), (5, 60)))
    assert summary(changes) == [
        ("start", None, "lane"),
        ("update", "lane", "underpass_closure"),
        ("end", "underpass_closure", None),
    ]
    assert [c.peak_depth_cm for c in changes] == [16, 33, 33]
    assert changes[-1].depth_cm == 5


def test_peak_depth_includes_readings_while_the_start_was_pending() -> None:
    """A spike during the wait for the first level counts towards the peak."""
    (change,) = run([(0, 16), (10, 22), (20, 17), (30, 17)])
    assert change.peak_depth_cm == 22


def test_peak_depth_resets_between_episodes() -> None:
    """A new episode's peak does not remember the previous episode's water."""
    changes = run(every_5s((30, 60), (0, 60), (16, 60)))
    assert [c.peak_depth_cm for c in changes] == [30, 30, 16]


def test_zero_min_duration_confirms_on_the_first_reading() -> None:
    """With min_duration 0 a level change is reported at the reading that crosses it."""
    policy = LevelPolicy(min_duration=timedelta(0))
    changes = run([(0, 10), (1, 15), (2, 14), (3, 12.5)], policy)
    assert summary(changes) == [("start", None, "lane"), ("end", "lane", None)]
    assert changes[0].time == changes[0].since == T0 + timedelta(seconds=1)


def test_single_level_policy_with_zero_hysteresis_leaves_below_the_level() -> None:
    """With hysteresis 0 the level is left as soon as the depth is below it."""
    policy = LevelPolicy(
        levels=(DepthLevel(name="wet", depth_cm=5),),
        hysteresis_cm=0,
        min_duration=timedelta(seconds=10),
    )
    changes = run([(0, 5), (10, 5), (20, 4.99), (30, 4.99)], policy)
    assert summary(changes) == [("start", None, "wet"), ("end", "wet", None)]


def test_tracker_exposes_confirmed_level_and_last_depth() -> None:
    """level is the confirmed level (not a pending one); depth_cm the last reading."""
    tracker = LevelTracker(POLICY)
    assert (tracker.level, tracker.depth_cm) == (None, None)
    tracker.observe(T0, 16)
    assert (tracker.level, tracker.depth_cm) == (None, 16)
    tracker.observe(T0 + timedelta(seconds=30), 17)
    assert (tracker.level, tracker.depth_cm) == ("lane", 17)


def test_equal_reading_times_are_accepted() -> None:
    """Two readings with the same time are fine (a sensor batch)."""
    tracker = LevelTracker(POLICY)
    tracker.observe(T0, 3)
    assert tracker.observe(T0, 4) is None


def test_time_going_backwards_raises() -> None:
    """A reading older than the previous one is rejected with ValueError."""
    tracker = LevelTracker(POLICY)
    tracker.observe(T0, 3)
    with pytest.raises(ValueError, match="before the previous reading"):
        tracker.observe(T0 - timedelta(seconds=1), 3)


def test_naive_time_raises() -> None:
    """Times must be timezone-aware; a naive time is rejected."""
    with pytest.raises(ValueError, match="no timezone"):
        LevelTracker(POLICY).observe(datetime(2025, 7, 1, 8, 0), 3)


def test_nan_depth_raises() -> None:
    """A NaN depth is a caller bug (unreliable readings are None and skipped)."""
    with pytest.raises(ValueError, match="NaN"):
        LevelTracker(POLICY).observe(T0, math.nan)


def test_non_utc_times_are_reported_in_utc() -> None:
    """An aware local time (UTC+8) comes back in the change as the same instant in UTC."""
    cst = timezone(timedelta(hours=8))
    tracker = LevelTracker(LevelPolicy(min_duration=timedelta(0)))
    change = tracker.observe(datetime(2025, 7, 1, 16, 0, tzinfo=cst), 20)
    assert change is not None
    assert change.time == T0
    assert change.time.tzinfo == UTC


# -- LevelTracker: properties over arbitrary depth series -----------------------------------


@given(
    depths=st.lists(st.floats(min_value=0, max_value=60), min_size=1, max_size=120),
    step_s=st.sampled_from([1, 5, 10, 30]),
)
def test_changes_form_well_nested_episodes_that_held_long_enough(
    depths: list[float], step_s: int
) -> None:
    """Any series gives start, updates, end in order, each held min_duration, none repeated."""
    changes = run([(i * step_s, depth) for i, depth in enumerate(depths)])
    level: str | None = None
    for change in changes:
        assert change.previous == level
        assert change.level != change.previous
        assert change.phase == (
            "start" if level is None else "end" if change.level is None else "update"
        )
        assert change.time - change.since >= POLICY.min_duration
        assert change.peak_depth_cm >= change.depth_cm
        level = change.level


@given(
    noise=st.lists(st.floats(min_value=-1.0, max_value=1.0), min_size=1, max_size=200),
    level_cm=st.sampled_from([15.0, 25.0, 40.0]),
)
def test_noise_of_one_cm_around_a_confirmed_level_never_changes_it(
    noise: list[float], level_cm: float
) -> None:
    """Once a level is confirmed, ±1 cm noise around its threshold never leaves it."""
    tracker = LevelTracker(POLICY)
    tracker.observe(T0, level_cm + 1)
    assert tracker.observe(T0 + timedelta(seconds=30), level_cm + 1) is not None
    for i, delta in enumerate(noise):
        time = T0 + timedelta(seconds=35 + 5 * i)
        assert tracker.observe(time, level_cm + delta) is None
