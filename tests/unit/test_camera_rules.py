"""The camera rule engine over synthetic detection sequences (5 fps, video-timed).

Each scenario is a few objects with a box, when they are visible, and when they start to
move; the engine must give one start per real episode, updates only at milestones or
confidence rises, and one end, never one event per frame.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from citywatch.config.camera import CameraConfig
from citywatch.contracts.messages import AlertKind, Phase
from citywatch.edge.camera.episodes import RuleEvent, schedule_active
from citywatch.edge.camera.rules import CameraRules
from citywatch.models.detections import Detections

W, H, FPS = 1280, 720, 5
T0 = datetime(2026, 5, 4, 2, 0, tzinfo=UTC)  # Monday 10:00 in Asia/Shanghai
TZ = "Asia/Shanghai"
Box = tuple[float, float, float, float]

CURB = [[0.0, 0.5], [0.6, 0.5], [0.6, 1.0], [0.0, 1.0]]
SIDEWALK = [[0.6, 0.5], [1.0, 0.5], [1.0, 1.0], [0.6, 1.0]]
PARKED = (300.0, 450.0, 500.0, 560.0)  # bottom centre (400, 560): in the curb zone
PARKED_2 = (100.0, 600.0, 280.0, 700.0)
TALL = (300.0, 330.0, 500.0, 560.0)  # top centre above the curb zone, bottom centre in it
STALL = (900.0, 450.0, 1000.0, 540.0)  # in the sidewalk zone, 100 px wide


@dataclass(frozen=True)
class Thing:
    """One synthetic object: its box at rest, when it is seen, and how it moves."""

    name: str
    box: Box
    seen: tuple[tuple[float, float], ...] = ((0.0, math.inf),)
    moves_at: float = math.inf
    velocity_px_s: float = 120.0
    conf: float = 0.8
    conf_after: tuple[float, float] | None = None  # (pts, confidence from then on)
    jitter_px: float = 0.0
    every: int = 1  # seen on every n-th frame only
    hidden: tuple[float, float, float] | None = None  # (from, to, px of its bottom hidden)
    conf_spread: float = 0.0  # the confidence wanders uniformly ± this around conf
    dip: tuple[float, float, float] | None = None  # (from, to, confidence in between)
    away: tuple[float, float, float] | None = None  # (from, to, px it stands off to the right)

    def detection(self, i: int, pts: float, rng: np.random.Generator) -> tuple[Box, float] | None:
        if i % self.every or not any(a <= pts < b for a, b in self.seen):
            return None
        dx = max(0.0, pts - self.moves_at) * self.velocity_px_s
        jx, jy = rng.normal(0, self.jitter_px, 2) if self.jitter_px else (0.0, 0.0)
        x1, y1, x2, y2 = self.box
        if self.hidden is not None and self.hidden[0] <= pts < self.hidden[1]:
            y2 -= self.hidden[2]
        if self.away is not None and self.away[0] <= pts < self.away[1]:
            dx += self.away[2]
        conf = self.conf
        if self.conf_after is not None and pts >= self.conf_after[0]:
            conf = self.conf_after[1]
        if self.dip is not None and self.dip[0] <= pts < self.dip[1]:
            conf = self.dip[2]
        if self.conf_spread:
            conf += float(rng.uniform(-self.conf_spread, self.conf_spread))
        return (x1 + dx + jx, y1 + jy, x2 + dx + jx, y2 + jy), conf


def frames(
    things: Sequence[Thing], start_s: float, end_s: float, shake_px: float = 0.0
) -> Iterator[tuple[float, Detections]]:
    """Detections of ``things`` at FPS; ``shake_px`` moves every box of a frame by the same
    random offset (a swaying pole)."""
    rng = np.random.default_rng(7)
    for i in range(round(start_s * FPS), round(end_s * FPS)):
        pts = i / FPS
        rows = [(t.name, d) for t in things if (d := t.detection(i, pts, rng)) is not None]
        sx, sy = rng.uniform(-shake_px, shake_px, 2) if shake_px else (0.0, 0.0)
        yield (
            pts,
            Detections(
                np.array(
                    [(x1 + sx, y1 + sy, x2 + sx, y2 + sy) for _, ((x1, y1, x2, y2), _) in rows],
                    np.float32,
                ).reshape(-1, 4),
                np.array([conf for _, (_, conf) in rows], np.float32),
                tuple(name for name, _ in rows),
            ),
        )


def camera(*rules: dict[str, Any], zones: list[dict[str, Any]] | None = None) -> CameraConfig:
    return CameraConfig.model_validate(
        {
            "id": "cam-1",
            "gateway": "gw-1",
            "placement": {"district": "d1", "position": {"lat": 31.43, "lon": 119.48}},
            "source": {"url": "synthetic:test", "detect_fps": FPS},
            "zones": zones
            if zones is not None
            else [
                {"name": "curb", "polygon": CURB},
                {"name": "sidewalk", "polygon": SIDEWALK},
                {"name": "sky", "polygon": [[0, 0], [1, 0], [1, 0.3], [0, 0.3]], "mask": True},
            ],
            "rules": list(rules),
        }
    )


def parking(**overrides: Any) -> dict[str, Any]:
    return {
        "type": "illegal_parking",
        "name": "curb-parking",
        "zones": ["curb"],
        "dwell": "20s",
        "update_every": "10s",
        "cooldown": "30s",
        **overrides,
    }


def vending(**overrides: Any) -> dict[str, Any]:
    return {
        "type": "street_vending",
        "name": "vending",
        "zones": ["sidewalk"],
        "dwell": "20s",
        "update_every": "1h",
        **overrides,
    }


def smoke(**overrides: Any) -> dict[str, Any]:
    return {
        "type": "smoke",
        "name": "burning",
        "zones": ["curb", "sidewalk"],
        "window": "10s",
        "min_fraction": 0.6,
        "update_every": "1h",
        "cooldown": "1m",
        **overrides,
    }


def run(
    rules: CameraRules,
    things: Sequence[Thing],
    end_s: float,
    start_s: float = 0.0,
    smoke_confirmed: bool | None = None,
    shake_px: float = 0.0,
) -> list[RuleEvent]:
    events: list[RuleEvent] = []
    for pts, dets in frames(things, start_s, end_s, shake_px):
        events += rules.step(pts, T0 + timedelta(seconds=pts), dets, smoke_confirmed)
    return events


def story(events: Sequence[RuleEvent]) -> list[tuple[str, str, str]]:
    return [(e.phase.value, e.reason, e.episode_key) for e in events]


def engine(*rules: dict[str, Any], zones: list[dict[str, Any]] | None = None) -> CameraRules:
    return CameraRules(camera(*rules, zones=zones), W, H, TZ)


P = "curb-parking:"
START, END = "start", "end"


@pytest.mark.parametrize(
    ("things", "end_s", "rule", "expected"),
    [
        pytest.param(
            [Thing("car", PARKED, moves_at=45)],
            60,
            {},
            [
                (START, "dwell", P + "0"),
                ("update", "milestone", P + "0"),
                ("update", "milestone", P + "0"),
                (END, "moved", P + "0"),
            ],
            id="parked-past-dwell-then-leaves",
        ),
        pytest.param(
            [Thing("car", (0, 450, 200, 560), moves_at=0, velocity_px_s=60)],
            20,
            {},
            [],
            id="passing-car",
        ),
        pytest.param(
            [Thing("car", PARKED, moves_at=10)], 40, {}, [], id="stops-briefly-then-drives-on"
        ),
        pytest.param(
            [Thing("car", PARKED, jitter_px=6)],
            25,
            {},
            [(START, "dwell", P + "0")],
            id="jittering-box-still-parked",
        ),
        pytest.param(
            [Thing("car", (665, 450, 865, 560), jitter_px=6)],
            40,
            {"cooldown": 0, "update_every": None},
            [(START, "dwell", P + "0")],
            id="jitter-on-the-zone-edge-does-not-flap",
        ),
        pytest.param(
            [Thing("car", PARKED, seen=((0, 12), (14, math.inf)))],
            25,
            {},
            [(START, "dwell", P + "0")],
            id="missing-2s-tracker-bridges",
        ),
        pytest.param(
            [Thing("car", PARKED, seen=((0, 12), (16, math.inf)))],
            25,
            {},
            [(START, "dwell", P + "0")],
            id="missing-4s-memory-bridges",
        ),
        pytest.param(
            [Thing("car", PARKED, seen=((0, 25),))],
            40,
            {},
            [(START, "dwell", P + "0"), (END, "lost", P + "0")],
            id="gone-beyond-lost-grace",
        ),
        pytest.param(
            [Thing("car", PARKED), Thing("car", PARKED_2)],
            25,
            {},
            [(START, "dwell", P + "0"), (START, "dwell", P + "1")],
            id="two-cars-two-episodes",
        ),
        pytest.param(
            [Thing("truck", PARKED)], 25, {}, [(START, "dwell", P + "0")], id="truck-counts"
        ),
        pytest.param([Thing("person", PARKED)], 25, {}, [], id="other-class-ignored"),
        pytest.param(
            [Thing("car", (900, 450, 1100, 560))], 25, {}, [], id="parked-outside-the-zone"
        ),
        pytest.param([Thing("car", PARKED, conf=0.3)], 25, {}, [], id="below-min-confidence"),
        pytest.param(
            [Thing("car", PARKED, conf=0.45, conf_after=(22, 0.95))],
            35,
            {"update_every": None},
            [(START, "dwell", P + "0"), ("update", "confidence", P + "0")],
            id="confidence-rise-updates",
        ),
        pytest.param(
            [Thing("car", PARKED, conf_after=(22, 0.1))],
            40,
            {"update_every": None},
            [(START, "dwell", P + "0"), (END, "low_confidence", P + "0")],
            id="confidence-collapse-ends",
        ),
        pytest.param([Thing("car", PARKED)], 25, {"min_area": 0.05}, [], id="below-min-area"),
        pytest.param([Thing("car", PARKED)], 25, {"max_area": 0.01}, [], id="above-max-area"),
        pytest.param(
            [Thing("car", PARKED)],
            25,
            {"schedule": {"start": "07:00", "end": "09:00"}},
            [],
            id="outside-schedule",
        ),
        pytest.param(
            [Thing("car", PARKED)],
            40,
            {"schedule": {"days": ["sat", "sun"]}},
            [],
            id="not-a-scheduled-day",
        ),
        pytest.param(
            [Thing("car", PARKED)],
            40,
            {"schedule": {"start": "09:00", "end": "10:00:25"}},
            [(START, "dwell", P + "0"), (END, "schedule", P + "0")],
            id="schedule-closes-open-episode",
        ),
        pytest.param(
            [Thing("car", TALL)], 25, {}, [(START, "dwell", P + "0")], id="bottom-centre-decides"
        ),
        pytest.param(
            [Thing("car", TALL)], 25, {"anchor": "top_center"}, [], id="top-centre-outside-the-zone"
        ),
    ],
)
def test_illegal_parking(
    things: list[Thing], end_s: float, rule: dict[str, Any], expected: list[tuple[str, str, str]]
) -> None:
    """Table: one start per parked car past dwell, updates at milestones, one end."""
    assert story(run(engine(parking(**rule)), things, end_s)) == expected


def test_dwell_is_timed_by_video_seconds_and_survives_a_new_track_id() -> None:
    """Missing 4 s (a new tracker id), the car keeps its clock: start at ~20 s, not ~36 s."""
    events = run(engine(parking()), [Thing("car", PARKED, seen=((0, 12), (16, math.inf)))], 25)
    (start,) = events
    assert start.pts_s == pytest.approx(20.2)
    assert start.dwell_s == pytest.approx(20.0)
    assert start.object_id == 0 and start.track_id != 0


def test_milestones_follow_update_every_and_end_reports_the_dwell() -> None:
    """Updates at each 10 s of dwell, the end at the dwell it had when it drove off."""
    events = run(engine(parking()), [Thing("car", PARKED, moves_at=65)], 80)
    assert [e.phase for e in events] == [Phase.START] + [Phase.UPDATE] * 4 + [Phase.END]
    assert [round(e.dwell_s) for e in events[:-1]] == [20, 30, 40, 50, 60]
    assert [e.seq for e in events] == [0, 1, 2, 3, 4, 5]
    assert events[-1].dwell_s == pytest.approx(65, abs=2)


def test_cooldown_holds_back_a_new_episode_at_the_same_place() -> None:
    """After an end, the same rule and place do not start again until the cooldown passed."""
    rules = engine(parking(cooldown="40s"))
    first = run(rules, [Thing("car", PARKED, moves_at=25)], 40)
    assert story(first) == [(START, "dwell", P + "0"), (END, "moved", P + "0")]
    ended_at = first[-1].pts_s
    second = run(rules, [Thing("car", PARKED)], 110, start_s=45)
    assert [e.phase for e in second][:2] == [Phase.START, Phase.UPDATE]
    assert second[0].pts_s >= ended_at + 40


def test_no_cooldown_lets_the_next_car_start_at_its_dwell() -> None:
    """With cooldown 0 the next car parked on the spot alerts after its own dwell."""
    rules = engine(parking(cooldown=0))
    run(rules, [Thing("car", PARKED, moves_at=25)], 40)
    (start,) = run(rules, [Thing("car", PARKED)], 70, start_s=45)
    assert start.pts_s == pytest.approx(65.2)


def test_car_in_a_mask_is_ignored() -> None:
    """A mask over part of the curb hides the car parked under it."""
    zones: list[dict[str, Any]] = [
        {"name": "curb", "polygon": CURB},
        {
            "name": "bus-stop",
            "polygon": [[0.2, 0.7], [0.45, 0.7], [0.45, 0.9], [0.2, 0.9]],
            "mask": True,
        },
    ]
    assert run(engine(parking(), zones=zones), [Thing("car", PARKED)], 25) == []


def test_pixel_zone_gives_the_same_events_as_the_normalized_one() -> None:
    """A zone drawn in pixels of this frame size behaves as its 0–1 twin."""
    pixel = [[x * W, y * H] for x, y in CURB]
    zones = [{"name": "curb", "polygon": pixel, "units": "pixel"}]
    things = [Thing("car", PARKED, moves_at=30)]
    assert story(run(engine(parking(), zones=zones), things, 40)) == story(
        run(engine(parking()), things, 40)
    )


@pytest.mark.parametrize(
    ("things", "rule", "expected"),
    [
        pytest.param([Thing("stall", STALL)], {}, ["start"], id="stall-past-dwell"),
        pytest.param(
            [Thing("stall", STALL)], {"require_person": True}, [], id="stall-without-person"
        ),
        pytest.param(
            [Thing("stall", STALL), Thing("person", (1010, 420, 1050, 560), every=3)],
            {"require_person": True},
            ["start"],
            id="stall-with-vendor-beside-it",
        ),
        pytest.param(
            [Thing("stall", STALL), Thing("person", (1200, 420, 1240, 560))],
            {"require_person": True},
            [],
            id="person-too-far-away",
        ),
        pytest.param(
            [Thing("stall", STALL), Thing("person", (1200, 420, 1240, 560))],
            {"require_person": True, "person_distance": 3},
            ["start"],
            id="person-within-a-wider-distance",
        ),
        pytest.param([Thing("stall", STALL, moves_at=5)], {}, [], id="stall-wheeled-past"),
    ],
)
def test_street_vending(things: list[Thing], rule: dict[str, Any], expected: list[str]) -> None:
    """Table: a stall standing past dwell, with a person near it when required."""
    events = run(engine(vending(**rule)), things, 25)
    assert [e.phase.value for e in events] == expected
    assert all(e.kind is AlertKind.STREET_VENDING and e.zone == "sidewalk" for e in events)


SMOKE_BOX = (350.0, 300.0, 450.0, 500.0)  # bottom centre in the curb zone


@pytest.mark.parametrize(
    ("things", "rule", "confirmed", "expected"),
    [
        pytest.param(
            [Thing("smoke", SMOKE_BOX, seen=((0, 20),))],
            {"clear_after": "10s"},
            None,
            [(START, "persistence", "burning:curb"), (END, "cleared", "burning:curb")],
            id="persistent-smoke-starts-then-clears",
        ),
        pytest.param(
            [Thing("smoke", SMOKE_BOX, seen=((5, 5.4),))], {}, None, [], id="two-frame-flash"
        ),
        pytest.param(
            [Thing("smoke", SMOKE_BOX, every=2)], {}, None, [], id="half-the-frames-not-enough"
        ),
        pytest.param(
            [Thing("smoke", SMOKE_BOX, every=2)],
            {"min_fraction": 0.45},
            None,
            [(START, "persistence", "burning:curb")],
            id="half-the-frames-meets-a-lower-fraction",
        ),
        pytest.param(
            [Thing("smoke", SMOKE_BOX)],
            {"confirm_with_classical": True},
            False,
            [],
            id="classical-detector-disagrees",
        ),
        pytest.param(
            [Thing("smoke", SMOKE_BOX)],
            {"confirm_with_classical": True},
            True,
            [(START, "persistence", "burning:curb")],
            id="classical-detector-confirms",
        ),
        pytest.param(
            [Thing("smoke", (350, 10, 450, 150))], {}, None, [], id="smoke-in-the-sky-mask"
        ),
        pytest.param([Thing("smoke", SMOKE_BOX, conf=0.2)], {}, None, [], id="low-confidence"),
        pytest.param(
            [Thing("smoke", SMOKE_BOX), Thing("smoke", (1000, 400, 1100, 600))],
            {},
            None,
            [(START, "persistence", "burning:curb"), (START, "persistence", "burning:sidewalk")],
            id="one-episode-per-zone",
        ),
    ],
)
def test_smoke_persistence(
    things: list[Thing],
    rule: dict[str, Any],
    confirmed: bool | None,
    expected: list[tuple[str, str, str]],
) -> None:
    """Table: smoke in at least min_fraction of the window's frames; ends below half, clear_after
    after the last smoke."""
    events = run(engine(smoke(**rule)), things, 40, smoke_confirmed=confirmed)
    assert story(events) == expected


def test_smoke_starts_once_a_full_window_persisted() -> None:
    """The fraction is judged only over a full window of video time."""
    (start,) = run(engine(smoke()), [Thing("smoke", SMOKE_BOX)], 15)
    assert start.pts_s == pytest.approx(10.0)
    assert start.dwell_s == pytest.approx(10.0)
    assert start.class_name == "smoke"


def test_flush_ends_every_open_episode() -> None:
    """End of stream: each open episode gets its one end, reason flush."""
    rules = engine(parking(), smoke())
    run(rules, [Thing("car", PARKED), Thing("smoke", SMOKE_BOX)], 25)
    assert sorted(rules.open_episodes) == ["burning:curb", "curb-parking:0"]
    ends = rules.flush(25.0, T0 + timedelta(seconds=25))
    assert sorted((e.phase.value, e.reason, e.episode_key) for e in ends) == [
        (END, "flush", "burning:curb"),
        (END, "flush", "curb-parking:0"),
    ]
    assert rules.open_episodes == []


def test_hot_reload_keeps_dwell_and_open_episodes() -> None:
    """A changed dwell and redrawn zone apply without resetting the parked car's clock."""
    rules = engine(parking(dwell="30s"))
    car = [Thing("car", PARKED)]
    assert run(rules, car, 15) == []
    redrawn = [{"name": "curb", "polygon": [[0.0, 0.45], [0.65, 0.45], [0.65, 1.0], [0.0, 1.0]]}]
    assert rules.update_config(camera(parking(dwell="20s"), zones=redrawn)) == []
    (start,) = run(rules, car, 25, start_s=15)
    assert start.pts_s == pytest.approx(20.2)
    assert rules.update_config(camera(parking(dwell="20s", max_area=0.9), zones=redrawn)) == []
    assert rules.open_episodes == ["curb-parking:0"]


def test_hot_reload_ends_episodes_of_removed_rules() -> None:
    """Removing a rule ends its open episodes at the last processed frame."""
    rules = engine(parking())
    run(rules, [Thing("car", PARKED)], 25)
    (end,) = rules.update_config(camera())
    assert (end.phase, end.reason, end.pts_s) == (Phase.END, "config", 24.8)


@pytest.mark.slow
def test_same_frames_give_the_same_events() -> None:
    """Replay is exact: a second engine fed the same frames emits equal events."""
    things = [Thing("car", PARKED, moves_at=40, jitter_px=4), Thing("smoke", SMOKE_BOX, every=1)]
    assert run(engine(parking(), smoke()), things, 50) == run(
        engine(parking(), smoke()), things, 50
    )


def test_event_geometry_is_normalized_to_the_frame() -> None:
    """The box and the anchor travel as 0–1 of the frame; the pixels stay alongside."""
    (start,) = run(engine(parking()), [Thing("car", PARKED)], 25)
    assert start.xyxy == pytest.approx(PARKED)
    assert start.box == pytest.approx((300 / W, 450 / H, 500 / W, 560 / H))
    assert start.anchor == pytest.approx((400 / W, 560 / H))
    assert (start.kind, start.zone, start.class_name) == (AlertKind.ILLEGAL_PARKING, "curb", "car")
    assert start.time == T0 + timedelta(seconds=start.pts_s)


@pytest.mark.parametrize(
    ("schedule", "local", "active"),
    [
        (None, "2026-05-04T03:00", True),
        ({"start": "07:00", "end": "22:00"}, "2026-05-04T06:59", False),
        ({"start": "07:00", "end": "22:00"}, "2026-05-04T07:00", True),
        ({"start": "22:00", "end": "06:00"}, "2026-05-04T23:30", True),
        ({"start": "22:00", "end": "06:00"}, "2026-05-05T05:00", True),
        ({"start": "22:00", "end": "06:00"}, "2026-05-04T12:00", False),
        ({"days": ["mon"], "start": "22:00", "end": "06:00"}, "2026-05-05T05:00", True),
        ({"days": ["mon"], "start": "22:00", "end": "06:00"}, "2026-05-05T23:00", False),
    ],
)
def test_schedule_in_site_local_time(
    schedule: dict[str, Any] | None, local: str, active: bool
) -> None:
    """Windows in local time; one ending before it starts runs past midnight (2026-05-04 is a Monday)."""
    rule = camera(parking(schedule=schedule)).rules[0]
    assert schedule_active(rule.schedule, datetime.fromisoformat(local)) is active


def test_schedule_uses_the_site_time_zone_not_utc() -> None:
    """02:00 UTC is 10:00 in Shanghai: a 09:00–11:00 rule is active."""
    rules = engine(parking(schedule={"start": "09:00", "end": "11:00"}))
    assert len(run(rules, [Thing("car", PARKED)], 25)) == 1


@pytest.mark.parametrize(
    ("pts", "time", "message"),
    [
        (1.0, T0, "not after the previous"),
        (3.0, datetime(2026, 5, 4, 2, 0), "no time zone"),
    ],
)
def test_bad_frame_times_are_refused(pts: float, time: datetime, message: str) -> None:
    """Video time must increase and wall time must be aware."""
    rules = engine(parking())
    rules.step(2.0, T0, Detections.empty())
    with pytest.raises(ValueError, match=message):
        rules.step(pts, time, Detections.empty())
