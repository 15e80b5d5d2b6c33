"""The camera rules on a real street (issue 23): occlusion, camera shake, confidence dips and
gusts neither split nor delay an episode, while a real departure or a fire that went out
still ends it. Synthetic detections at 5 fps, video-timed, as in test_camera_rules."""

from __future__ import annotations

from typing import Any

import pytest

from citywatch.edge.camera.episodes import RuleEvent
from tests.unit.test_camera_rules import (
    END,
    PARKED,
    PARKED_2,
    SMOKE_BOX,
    STALL,
    START,
    Thing,
    engine,
    parking,
    run,
    smoke,
    story,
    vending,
)

P, V, S = "curb-parking:", "vending:", "burning:"
MOTORCYCLE = (330.0, 500.0, 400.0, 560.0)  # 70 × 60 px, diagonal 92 px: 0.15 of it is 13.8 px
SLOW = {"dwell": "60s", "update_every": None, "cooldown": "5m"}


def starts(events: list[RuleEvent]) -> list[float]:
    return [round(e.pts_s, 1) for e in events if e.phase.value == START]


@pytest.mark.parametrize(
    ("rule", "things", "end_s", "expected", "start_s"),
    [
        pytest.param(
            parking(**SLOW),
            [Thing("car", PARKED, hidden=(20, 45, 45))],
            80,
            [(START, "dwell", P + "0")],
            60.2,
            id="people-hide-the-parked-cars-lower-half-for-25s",
        ),
        pytest.param(
            parking(**SLOW),
            [Thing("car", PARKED, hidden=(30, 58, 50))],
            80,
            [(START, "dwell", P + "0")],
            60.2,
            id="still-hidden-when-the-dwell-is-reached",
        ),
        pytest.param(
            vending(**SLOW),
            [Thing("stall", STALL, hidden=(15, 45, 40))],
            80,
            [(START, "dwell", V + "0")],
            60.2,
            id="two-e-bikes-stop-in-front-of-the-stall",
        ),
        pytest.param(
            parking(**SLOW),
            [Thing("car", PARKED, hidden=(20, 45, 45), moves_at=70)],
            100,
            [(START, "dwell", P + "0"), (END, "moved", P + "0")],
            60.2,
            id="hidden-then-drives-away-still-ends",
        ),
        pytest.param(
            parking(**SLOW),
            [Thing("car", PARKED, hidden=(20, 45, 45), moves_at=30, velocity_px_s=40)],
            100,
            [],
            None,
            id="leaving-while-half-hidden-is-a-departure",
        ),
    ],
)
def test_a_partly_hidden_object_keeps_its_clock(
    rule: dict[str, Any],
    things: list[Thing],
    end_s: float,
    expected: list[tuple[str, str, str]],
    start_s: float | None,
) -> None:
    """Finding 1: a box cut off at the bottom, top and sides in place, is no move."""
    events = run(engine(rule), things, end_s)
    assert story(events) == expected
    assert starts(events) == ([] if start_s is None else [start_s])


@pytest.mark.parametrize(
    ("things", "shake_px", "expected_starts"),
    [
        pytest.param([Thing("motorcycle", MOTORCYCLE)], 15, [30.2], id="lone-motorcycle"),
        pytest.param(
            [Thing("motorcycle", MOTORCYCLE), Thing("car", PARKED_2)],
            15,
            [30.2, 30.2],
            id="motorcycle-beside-a-car",
        ),
        pytest.param(
            [Thing("motorcycle", MOTORCYCLE, jitter_px=3), Thing("car", PARKED_2, jitter_px=3)],
            15,
            [30.2, 30.2],
            id="shake-and-box-jitter",
        ),
        pytest.param([Thing("car", PARKED_2)], 15, [30.2], id="car"),
        pytest.param(
            [Thing("motorcycle", MOTORCYCLE, moves_at=0, velocity_px_s=15)],
            15,
            [],
            id="creeping-motorcycle-is-not-still",
        ),
    ],
)
def test_camera_shake_does_not_keep_a_small_object_moving(
    things: list[Thing], shake_px: float, expected_starts: list[float]
) -> None:
    """Finding 2: a 70×60 px motorcycle on a pole swaying ±15 px is as still as a car."""
    rule = parking(dwell="30s", update_every=None, classes=["car", "motorcycle"])
    events = run(engine(rule), things, 120, shake_px=shake_px)
    assert [e.phase.value for e in events] == [START] * len(expected_starts)
    assert starts(events) == pytest.approx(expected_starts, abs=1.0)


@pytest.mark.parametrize(
    ("things", "end_s", "expected"),
    [
        pytest.param(
            [Thing("car", PARKED, conf=0.44, conf_spread=0.08)],
            420,
            [(START, "dwell", P + "0")],
            id="confidence-hovering-0.36-0.52-for-7-minutes",
        ),
        pytest.param(
            [Thing("car", PARKED, dip=(100, 101, 0.3))],
            420,
            [(START, "dwell", P + "0")],
            id="one-second-at-0.3",
        ),
        pytest.param(
            [Thing("car", PARKED, dip=(100, 106, 0.1))],
            420,
            [(START, "dwell", P + "0")],
            id="six-seconds-at-0.1-is-shorter-than-end-after",
        ),
        pytest.param(
            [Thing("car", PARKED, dip=(100, 420, 0.2))],
            420,
            [(START, "dwell", P + "0"), (END, "low_confidence", P + "0")],
            id="sustained-low-confidence-still-ends",
        ),
        pytest.param(
            [Thing("car", PARKED, away=(100, 104, 80))],
            420,
            [(START, "dwell", P + "0")],
            id="shoved-and-back-in-place-continues",
        ),
    ],
)
def test_one_problem_is_one_episode(
    things: list[Thing], end_s: float, expected: list[tuple[str, str, str]]
) -> None:
    """Finding 3: a dip or a shove shorter than end_after neither ends nor restarts it."""
    rule = parking(dwell="20s", update_every=None, cooldown="5m")
    assert story(run(engine(rule), things, end_s)) == expected


def test_the_episode_continued_after_a_shove_keeps_its_dwell_clock() -> None:
    """Back in place within end_after, the car's milestones count from its first arrival."""
    rule = parking(dwell="20s", update_every="60s", cooldown="5m")
    events = run(engine(rule), [Thing("car", PARKED, away=(100, 104, 80))], 200)
    assert [(e.phase.value, round(e.dwell_s)) for e in events] == [
        (START, 20),
        ("update", 60),
        ("update", 120),
        ("update", 180),
    ]


GUSTY_FIRE = Thing("smoke", SMOKE_BOX, seen=((0, 100), (104, 200), (208, 300), (315, 420)))


@pytest.mark.parametrize(
    ("things", "end_s", "expected", "end_at"),
    [
        pytest.param(
            [GUSTY_FIRE],
            480,
            [(START, "persistence", S + "curb"), (END, "cleared", S + "curb")],
            450.0,
            id="fire-with-gaps-of-4-8-15s-is-one-episode",
        ),
        pytest.param(
            [Thing("smoke", SMOKE_BOX, seen=((0, 20),))],
            70,
            [(START, "persistence", S + "curb"), (END, "cleared", S + "curb")],
            50.0,
            id="fire-out-ends-after-clear-after",
        ),
    ],
)
def test_a_gust_does_not_end_a_fire(
    things: list[Thing], end_s: float, expected: list[tuple[str, str, str]], end_at: float
) -> None:
    """Finding 4: smoke ends only after no smoke was seen for clear_after (30 s)."""
    events = run(engine(smoke()), things, end_s)
    assert story(events) == expected
    assert events[-1].pts_s == pytest.approx(end_at, abs=0.5)


def _through_outage(
    rule: dict[str, Any], down: tuple[float, float], end_s: float
) -> list[RuleEvent]:
    """A car parked from 0 s; the source delivers no frames at all during ``down``."""
    rules, car = engine(rule), [Thing("car", PARKED)]
    return run(rules, car, down[0]) + run(rules, car, end_s, start_s=down[1])


@pytest.mark.parametrize(
    ("rule", "expected", "start_s"),
    [
        pytest.param(
            parking(dwell="40s", update_every=None),
            [(START, "dwell", P + "0")],
            50.2,
            id="dwell-reached-during-the-outage-alerts-on-reconnect",
        ),
        pytest.param(
            parking(dwell="20s", update_every=None),
            [(START, "dwell", P + "0")],
            20.2,
            id="episode-open-through-the-outage-is-neither-ended-nor-repeated",
        ),
        pytest.param(
            parking(dwell="20s", update_every=None, max_outage="5s"),
            [(START, "dwell", P + "0"), (END, "lost", P + "0")],
            20.2,
            id="an-outage-beyond-max-outage-is-a-loss",
        ),
    ],
)
def test_blindness_is_not_departure(
    rule: dict[str, Any], expected: list[tuple[str, str, str]], start_s: float
) -> None:
    """Finding 6: 20 s without frames, the parked car is still there when they return."""
    events = _through_outage(rule, (30, 50), 80)
    assert story(events) == expected
    assert starts(events) == [start_s]
