"""Stationary objects: robust to jitter, a dwell clock in video seconds, a memory when lost."""

from __future__ import annotations

import numpy as np
import pytest

from citywatch.edge.camera.stationary import StationaryObjects, StationaryParams
from citywatch.edge.camera.tracking import TrackedObject

FPS = 5
PARAMS = StationaryParams(window_s=5, max_displacement=0.15, lost_grace_s=10)
CAR = (400.0, 300.0, 600.0, 410.0)  # diagonal ≈ 228 px; 0.15 of it ≈ 34 px


def track(track_id: int, box: Box, conf: float = 0.8) -> TrackedObject:
    return TrackedObject(track_id, box, conf, "car")


Box = tuple[float, float, float, float]


def shifted(box: Box, dx: float, dy: float = 0.0) -> Box:
    return (box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy)


@pytest.mark.parametrize(
    ("jitter_px", "speed_px_s", "stationary"),
    [
        (0, 0, True),
        (5, 0, True),  # ±2 % of the diagonal per frame
        (12, 0, True),  # ±5 %: a shaky box at night
        (0, 30, False),  # a car creeping through a jam
        (5, 120, False),  # a car driving past
    ],
)
def test_stationary_despite_jitter_but_not_when_moving(
    jitter_px: float, speed_px_s: float, stationary: bool
) -> None:
    """The anchor's median drift and spread decide, not one frame's box."""
    rng = np.random.default_rng(1)
    objects = StationaryObjects(PARAMS, {"car"})
    for i in range(10 * FPS):
        pts = i / FPS
        dx, dy = rng.normal(0, jitter_px, 2) if jitter_px else (0.0, 0.0)
        objects.update(pts, [track(1, shifted(CAR, speed_px_s * pts + dx, dy))])
    (obj,) = objects.objects
    assert obj.is_stationary is stationary


def test_dwell_clock_counts_video_seconds_since_it_stood_still() -> None:
    """Stationary once a full window is still; the dwell counts from the window's start."""
    objects = StationaryObjects(PARAMS, {"car"})
    for i in range(5 * FPS):
        objects.update(i / FPS, [track(1, CAR)])
    (obj,) = objects.objects
    assert not obj.is_stationary and obj.dwell_s(4.8) == 0
    objects.update(5.0, [track(1, CAR)])
    assert obj.is_stationary and obj.stationary_since_s == 0.0
    assert obj.dwell_s(65.0) == 65.0


def test_stationary_object_that_drives_away_is_no_longer_stationary() -> None:
    """Once the median of the last half window leaves the parked position, it moved."""
    objects = StationaryObjects(PARAMS, {"car"})
    for i in range(20 * FPS):
        pts = i / FPS
        objects.update(pts, [track(1, shifted(CAR, max(0.0, pts - 10) * 100))])
        if pts < 10:
            assert objects.objects[0].is_stationary is (pts >= 5)
    assert not objects.objects[0].is_stationary


def test_lost_stationary_object_is_remembered_for_the_grace_then_forgotten() -> None:
    """Missing for up to lost_grace it keeps its clock; after that update() returns it."""
    objects = StationaryObjects(PARAMS, {"car"})
    for i in range(10 * FPS):
        objects.update(i / FPS, [track(1, CAR)])
    assert objects.update(19.6, []) == []
    assert objects.objects[0].dwell_s(19.6) == 19.6
    (forgotten,) = objects.update(20.0, [])
    assert forgotten.object_id == 1 and objects.objects == []


@pytest.mark.parametrize(
    ("new_box", "inherits"),
    [
        (CAR, True),
        (shifted(CAR, 20), True),  # IoU ≈ 0.82
        (shifted(CAR, 120), False),  # IoU ≈ 0.25: another place
    ],
)
def test_new_track_on_the_same_place_inherits_identity_and_dwell(
    new_box: Box, inherits: bool
) -> None:
    """A new id where a lost stationary object stood takes over its identity and clock."""
    objects = StationaryObjects(PARAMS, {"car"})
    for i in range(10 * FPS):
        objects.update(i / FPS, [track(1, CAR)])
    objects.update(14.0, [track(7, new_box)])
    ids = [obj.object_id for obj in objects.objects]
    if inherits:
        (obj,) = objects.objects
        assert (obj.object_id, obj.track_id, obj.stationary_since_s) == (1, 7, 0.0)
    else:
        assert ids == [1, 7]


def _parked_then_hidden(objects: StationaryObjects) -> None:
    """10 s parked at CAR (track 1); in its last two frames a bus slides over its left part,
    leaving half-visible boxes; then nothing is seen of it until 16 s."""
    for i in range(10 * FPS):
        objects.update(i / FPS, [track(1, CAR)])
    objects.update(10.0, [track(1, (480.0, 300.0, 600.0, 410.0))])
    objects.update(10.2, [track(1, (540.0, 305.0, 600.0, 410.0))])


SLIVER = (400.0, 310.0, 500.0, 410.0)  # the left half of the car as the bus leaves


def test_half_hidden_view_of_a_lost_stationary_object_inherits_it() -> None:
    """A box mostly inside the remembered place and a good part of its size is that object
    (IoU with the whole car is only 0.45), and it is not taken as having moved."""
    objects = StationaryObjects(PARAMS, {"car"})
    _parked_then_hidden(objects)
    assert objects.objects[0].place == CAR  # the median, not the last half-hidden boxes
    objects.update(16.0, [track(9, SLIVER)])
    (obj,) = objects.objects
    assert (obj.object_id, obj.track_id, obj.is_stationary) == (1, 9, True)
    objects.update(16.2, [track(9, CAR)])
    assert obj.is_stationary and obj.dwell_s(16.2) == pytest.approx(16.2)


def test_young_track_that_turns_out_to_be_the_lost_object_is_merged_into_it() -> None:
    """Two ids come back for one car; the one that first claimed nothing joins the car when
    its box lands on the place, so the dwell clock is kept and there is one object."""
    objects = StationaryObjects(PARAMS, {"car"})
    _parked_then_hidden(objects)
    objects.update(16.0, [track(8, (430.0, 200.0, 520.0, 290.0))])  # above: not the place
    assert [obj.object_id for obj in objects.objects] == [1, 8]
    objects.update(16.2, [track(8, shifted(CAR, 5))])
    (obj,) = objects.objects
    assert (obj.object_id, obj.track_id, obj.stationary_since_s) == (1, 8, 0.0)


@pytest.mark.parametrize(
    "box",
    [
        (380.0, 330.0, 440.0, 410.0),  # a person-sized box at its edge, partly outside
        (440.0, 330.0, 480.0, 380.0),  # wholly inside but a tenth of its size
    ],
)
def test_small_or_straddling_box_is_not_a_view_of_the_lost_object(box: Box) -> None:
    """Partial views must be mostly inside and at least a quarter of the place."""
    objects = StationaryObjects(PARAMS, {"car"})
    _parked_then_hidden(objects)
    objects.update(16.0, [track(9, box)])
    assert [obj.object_id for obj in objects.objects] == [1, 9]


def test_moving_object_is_not_inherited() -> None:
    """Only stationary objects are handed to a new track (a moving one is a new object)."""
    objects = StationaryObjects(PARAMS, {"car"})
    for i in range(2 * FPS):
        objects.update(i / FPS, [track(1, CAR)])
    objects.update(3.0, [track(2, CAR)])
    assert [obj.object_id for obj in objects.objects] == [1, 2]


def test_revived_old_id_does_not_split_the_object() -> None:
    """When both the old and the new id of one object report, it is still one object."""
    objects = StationaryObjects(PARAMS, {"car"})
    for i in range(10 * FPS):
        objects.update(i / FPS, [track(1, CAR)])
    objects.update(12.0, [track(5, CAR)])
    objects.update(12.2, [track(1, CAR), track(5, CAR)])
    assert [obj.object_id for obj in objects.objects] == [1]


def test_other_classes_are_ignored() -> None:
    """An instance watches its rule's classes only."""
    objects = StationaryObjects(PARAMS, {"car"})
    objects.update(0.0, [TrackedObject(3, CAR, 0.9, "person")])
    assert objects.objects == []


def test_one_low_confidence_frame_barely_moves_the_smoothed_confidence() -> None:
    """The exponential average keeps a 0.8 object above 0.4 through a 0.1 frame."""
    objects = StationaryObjects(PARAMS, {"car"})
    for i, conf in enumerate([0.8, 0.8, 0.8, 0.1, 0.8]):
        objects.update(i / FPS, [track(1, CAR, conf)])
        assert objects.objects[0].confidence > 0.55


def test_at_a_slow_detection_rate_a_car_driving_off_still_moves() -> None:
    """Every 5/3 s, half a window holds two boxes: then the last three decide."""
    step = 5 / 3
    objects = StationaryObjects(PARAMS, {"car"})
    for i in range(12):
        objects.update(i * step, [track(1, CAR)])
    assert objects.objects[0].is_stationary
    for i in range(12, 16):
        objects.update(i * step, [track(1, shifted(CAR, (i - 11) * 80))])
    assert not objects.objects[0].is_stationary


VAN = (700.0, 280.0, 900.0, 400.0)


def _parked(objects: StationaryObjects, seconds: float, *boxes: Box) -> None:
    """Every box (track ids 1, 2, …) seen unmoved for ``seconds`` at FPS."""
    for i in range(round(seconds * FPS)):
        objects.update(i / FPS, [track(n, box) for n, box in enumerate(boxes, 1)])


@pytest.mark.parametrize(
    ("seen", "keeps_clock"),
    [
        ((400.0, 300.0, 600.0, 365.0), True),  # the lower 45 px hidden by people walking past
        ((400.0, 300.0, 600.0, 330.0), True),  # only the top quarter left
        ((460.0, 300.0, 600.0, 410.0), True),  # the left 60 px hidden
        ((400.0, 300.0, 550.0, 360.0), True),  # the lower right corner hidden
        ((400.0, 300.0, 600.0, 300.0 + 20.0), False),  # a sliver: under a quarter of it
        (shifted(CAR, 60), False),  # all of it 60 px to the right: it moved
        ((460.0, 300.0, 660.0, 365.0), False),  # sides moved: not a view of part of it
    ],
    ids=["bottom", "top-quarter", "left", "corner", "sliver", "moved", "sides-moved"],
)
def test_a_partly_hidden_stationary_object_keeps_its_clock(seen: Box, keeps_clock: bool) -> None:
    """A box mostly inside its standing box, the other edges in place, is the whole of it;
    anything else that far off is a move, and the clock starts again where it stands."""
    objects = StationaryObjects(PARAMS, {"car"})
    _parked(objects, 10, CAR)
    for i in range(10 * FPS):
        objects.update(10 + i / FPS, [track(1, seen)])
    (obj,) = objects.objects
    assert (obj.stationary_since_s == 0.0) is keeps_clock
    if keeps_clock:
        assert obj.place == pytest.approx(CAR)
    else:
        assert obj.stationary_since_s is None or obj.stationary_since_s > 9


@pytest.mark.parametrize(
    ("boxes", "still"),
    [
        ((CAR, VAN), (True, True)),  # both moved 40 px with the camera
        ((CAR,), (False,)),  # alone, a 40 px move is a move
    ],
    ids=["two-objects", "alone"],
)
def test_a_shift_every_stationary_box_shares_is_the_camera(
    boxes: tuple[Box, ...], still: tuple[bool, ...]
) -> None:
    """A camera knocked 40 px for 4 s moves every box alike: that is taken out."""
    objects = StationaryObjects(PARAMS, {"car"})
    _parked(objects, 10, *boxes)
    for i in range(4 * FPS):
        objects.update(10 + i / FPS, [track(n, shifted(b, 40)) for n, b in enumerate(boxes, 1)])
    assert tuple(obj.is_stationary for obj in objects.objects) == still


def test_a_shift_only_one_of_two_objects_makes_is_its_own() -> None:
    """When the stationary boxes disagree, the one that moved moved; the other stays."""
    objects = StationaryObjects(PARAMS, {"car"})
    _parked(objects, 10, CAR, VAN)
    for i in range(4 * FPS):
        objects.update(10 + i / FPS, [track(1, shifted(CAR, 80)), track(2, VAN)])
    assert [obj.is_stationary for obj in objects.objects] == [False, True]


@pytest.mark.parametrize(
    ("back_at", "since"),
    [
        (13.0, 0.0),  # back within resume_s: the old clock
        (40.0, 40.0),  # back much later: a new arrival, a new clock
    ],
    ids=["within-resume", "much-later"],
)
def test_an_object_still_again_at_its_old_place_resumes_its_clock(
    back_at: float, since: float
) -> None:
    """Moved and back on its reference within resume_s, it keeps its stationary_since."""
    params = StationaryParams(window_s=5, max_displacement=0.15, lost_grace_s=60, resume_s=10)
    objects = StationaryObjects(params, {"car"})
    _parked(objects, 10, CAR)
    for i in range(round((back_at - 10) * FPS)):
        objects.update(10 + i / FPS, [track(1, shifted(CAR, 100))])
    for i in range(8 * FPS):
        objects.update(back_at + i / FPS, [track(1, CAR)])
    (obj,) = objects.objects
    assert obj.is_stationary and obj.stationary_since_s == pytest.approx(since, abs=1)


@pytest.mark.parametrize("jitter_s", [0.0, 0.005, 0.02], ids=["replay-grid", "5ms", "20ms"])
def test_live_frame_times_off_the_grid_still_make_a_parked_car_stationary(
    jitter_s: float,
) -> None:
    """Live frames arrive a few ms off the 0.2 s grid: still judged stationary one window
    (and at most a frame) after it stopped, as on a replay's exact grid."""
    rng = np.random.default_rng(3)
    objects = StationaryObjects(PARAMS, {"car"})
    became_still = None
    for i in range(10 * FPS):
        pts = i / FPS + (float(rng.uniform(0, jitter_s)) if i else 0.0)
        objects.update(pts, [track(1, CAR)])
        if became_still is None and objects.objects[0].is_stationary:
            became_still = pts
    assert became_still is not None
    assert became_still <= PARAMS.window_s + 1 / FPS + jitter_s
