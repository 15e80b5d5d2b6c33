"""The ByteTrack wrapper: stable ids through missed detections, class names kept per track."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from citywatch.config.camera import TrackerConfig
from citywatch.edge.camera.tracking import Tracker
from citywatch.models.detections import Detections

FPS = 5.0
CAR = (100.0, 100.0, 300.0, 210.0)


def frame(*objects: tuple[tuple[float, float, float, float], str, float]) -> Detections:
    if not objects:
        return Detections.empty()
    return Detections(
        np.array([box for box, _, _ in objects], np.float32),
        np.array([conf for _, _, conf in objects], np.float32),
        tuple(name for _, name, _ in objects),
    )


@pytest.mark.parametrize("gap_s", [0.4, 1.0, 2.0])
def test_parked_car_keeps_its_id_through_missed_detections(gap_s: float) -> None:
    """Up to 2 s without detections (default 3 s buffer) the car keeps its id."""
    tracker = Tracker(TrackerConfig(), FPS)
    rng = np.random.default_rng(0)
    ids: set[int] = set()
    missing = range(10, 10 + round(gap_s * FPS))
    for i in range(40):
        x1, y1, x2, y2 = (np.array(CAR) + rng.normal(0, 2, 4)).tolist()
        dets = frame() if i in missing else frame(((x1, y1, x2, y2), "car", 0.8))
        ids |= {t.track_id for t in tracker.update(dets, i / FPS)}
    assert len(ids) == 1


def test_track_lost_longer_than_the_buffer_gets_a_new_id() -> None:
    """Past the lost buffer the tracker lets go (the stationary memory takes over)."""
    tracker = Tracker(TrackerConfig(lost_buffer=timedelta(seconds=1)), FPS)
    ids: list[int] = []
    for i in range(30):
        dets = frame() if 10 <= i < 20 else frame((CAR, "car", 0.8))
        ids += [t.track_id for t in tracker.update(dets, i / FPS)]
    assert len(set(ids)) == 2


def test_class_names_stay_with_their_tracks() -> None:
    """Each track reports the class it was detected as, whatever the detection order."""
    tracker = Tracker(TrackerConfig(), FPS)
    person = (500.0, 100.0, 540.0, 200.0)
    seen: dict[int, set[str]] = {}
    for i in range(10):
        objects = [(CAR, "car", 0.9), (person, "person", 0.7)]
        if i % 2:
            objects.reverse()
        for track in tracker.update(frame(*objects), i / FPS):
            seen.setdefault(track.track_id, set()).add(track.class_name)
    assert sorted(map(sorted, seen.values())) == [["car"], ["person"]]


def test_new_object_gets_an_id_after_min_consecutive_frames() -> None:
    """A single-frame detection never becomes a track; a second frame confirms it."""
    tracker = Tracker(TrackerConfig(min_consecutive_frames=2), FPS)
    assert tracker.update(frame((CAR, "car", 0.9)), 0.0) == []
    (track,) = tracker.update(frame((CAR, "car", 0.9)), 0.2)
    assert track.class_name == "car"
    assert track.xyxy == pytest.approx(CAR)


def test_ids_are_not_reused_after_a_reset() -> None:
    """Resetting (new settings) never gives an old id to a new object."""
    tracker = Tracker(TrackerConfig(), FPS)
    first = {t.track_id for i in range(3) for t in tracker.update(frame((CAR, "car", 0.9)), i)}
    tracker.reset(TrackerConfig(min_iou=0.2))
    second = {t.track_id for i in range(3, 6) for t in tracker.update(frame((CAR, "car", 0.9)), i)}
    assert first and second and not first & second


def test_same_detections_give_the_same_ids() -> None:
    """Two trackers fed the same frames agree (replay gives the live run's ids)."""
    runs = []
    for _ in range(2):
        tracker = Tracker(TrackerConfig(), FPS)
        runs.append(
            [
                [t.track_id for t in tracker.update(frame((CAR, "car", 0.9)), i / FPS)]
                for i in range(5)
            ]
        )
    assert runs[0] == runs[1]
