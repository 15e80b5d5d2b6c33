"""Which tracked objects stand still, since when, and who they are when the tracker loses them.

An object is stationary when, over ``window_s`` of video, its anchor point does not drift
(median of the first third vs. median of the last third) by more than ``max_displacement``
box diagonals, nor spread (80th percentile of the distances to the median) by more than
twice that: medians make it robust to box jitter and to a frame or two of a bad box, and
judging by the drift keeps a small object on a swaying pole (every box of a frame shifted
by the same ±15 px) as still as a big one. Once stationary it keeps its reference position
until the median of the last half window moves away from it.

The camera's own motion is taken out first: when two or more stationary objects are seen
in a frame and agree on how far they all moved from their references, that common shift is
subtracted from every box of the frame before it is judged.

A stationary object partly hidden (people walking past hide a parked car's lower half) is
not moved: a box mostly inside its standing box, with at least one edge of each axis where
it was and the others moved inward, is a view of part of it, and counts as the whole box
those edges imply. A real departure moves the edges and still ends it. An object judged
moved that stands still again at its old reference within ``resume_s`` continues its old
dwell clock: a shove or a glitch of boxes is not a new arrival.

Blindness is not absence: when no frame at all came for more than ``BLIND_GAP_S`` (the
source was down), that time, up to ``max_outage_s``, does not count against
``lost_grace_s``, so a car found in its place after the camera reconnects keeps its clock.

Stationary objects are remembered for ``lost_grace_s`` after their track disappears; a track
appearing on the same place takes over the object, its identity and its dwell clock
(Frigate's stationary objects are the model). The place is the median box of the object's
last window, so the half-hidden boxes of its last frames (a bus pulling in front) do not
move it. A new box is on the place when it overlaps it (IoU >= ``reid_iou``) or when it is
a view of part of it: mostly inside it and at least a quarter of its size. A track is judged
again while it is young (first seen less than a window ago and not stationary itself): its
first box after an occlusion is often a sliver, and the box that matches comes a frame later.
Time is the video's.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from citywatch.config.camera import Anchor, StationaryRule
from citywatch.edge.camera.tracking import TrackedObject
from citywatch.edge.camera.zones import anchor_points
from citywatch.models.detections import box_area, intersection, iou

__all__ = ["StationaryObject", "StationaryObjects", "StationaryParams"]

CONFIDENCE_SMOOTHING = 0.3
"""Weight of the newest detection in an object's smoothed confidence (exponential average)."""

_MIN_SAMPLES = 3
_PART_INSIDE = 0.8
"""A box at least this fraction inside a remembered place …"""
_PART_SIZE = 0.25
"""… and at least this fraction of its area is a partial view of the object standing there."""
_SPREAD_PERCENTILE = 80
_SPREAD_FACTOR = 2.0
"""The spread may be this many times the drift limit: a guard against a box that jumps about,
loose enough that a small object's box shaken by the pole is not one."""
_EPS_S = 1e-6
BLIND_GAP_S = 2.0
"""A gap between processed frames longer than this is a source outage, not a slow detector."""


@dataclass(frozen=True, slots=True)
class StationaryParams:
    """How still, over how long, and how long a lost stationary object is remembered."""

    window_s: float = 5.0
    max_displacement: float = 0.15
    lost_grace_s: float = 10.0
    anchor: Anchor = "bottom_center"
    reid_iou: float = 0.5
    resume_s: float = 0.0
    """A moved object still again at its old reference within this keeps its dwell clock."""
    max_outage_s: float = 0.0
    """How much of a source outage (no frames) does not count as the objects being missing."""

    @classmethod
    def from_rule(cls, rule: StationaryRule) -> StationaryParams:
        return cls(
            window_s=rule.stationary_window.total_seconds(),
            max_displacement=rule.max_displacement,
            lost_grace_s=rule.lost_grace.total_seconds(),
            anchor=rule.anchor,
            resume_s=rule.end_after.total_seconds(),
            max_outage_s=rule.max_outage.total_seconds(),
        )


Box = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class _Left:
    reference: tuple[float, float]
    stand: Box
    stationary_since_s: float
    moved_s: float


@dataclass(frozen=True, slots=True)
class _Sample:
    pts_s: float
    x: float
    y: float
    diagonal: float
    box: tuple[float, float, float, float]


@dataclass
class StationaryObject:
    """One physical object as seen through one or more track ids."""

    object_id: int
    track_id: int
    class_name: str
    xyxy: tuple[float, float, float, float]
    confidence: float
    """Smoothed over the detections, so one low frame does not drop the object."""
    first_seen_s: float
    last_seen_s: float
    blind_when_seen_s: float = 0.0
    """The camera's blind time (source outages) up to when it was last seen."""
    stationary_since_s: float | None = None
    reference: tuple[float, float] | None = None
    """The anchor position (pixels) it stands at, while stationary."""
    stand: Box | None = None
    """Its whole box where it stands, while stationary: what partial views are matched to."""
    left: _Left | None = None
    """Where it stood and since when, after it was judged moved: a return there resumes."""
    samples: deque[_Sample] = field(default_factory=deque)

    @property
    def is_stationary(self) -> bool:
        return self.stationary_since_s is not None

    @property
    def place(self) -> tuple[float, float, float, float]:
        """Where it stands: the median box of its last window (its last box before any)."""
        if not self.samples:
            return self.xyxy
        x1, y1, x2, y2 = np.median([s.box for s in self.samples], axis=0).tolist()
        return (x1, y1, x2, y2)

    def seen_at(self, pts_s: float) -> bool:
        """Whether a track reported this object in the frame at ``pts_s``."""
        return self.last_seen_s == pts_s

    def dwell_s(self, pts_s: float) -> float:
        """Video seconds it has been standing still at ``pts_s`` (0 when it is not)."""
        if self.stationary_since_s is None:
            return 0.0
        return max(0.0, pts_s - self.stationary_since_s)


class StationaryObjects:
    """The objects of some classes on one camera, with their stationary state."""

    def __init__(self, params: StationaryParams, classes: Iterable[str] | None = None) -> None:
        self.params = params
        self.classes = frozenset(classes) if classes is not None else None
        self._objects: dict[int, StationaryObject] = {}
        self._by_track: dict[int, int] = {}
        self._last_pts_s: float | None = None
        self._blind_s = 0.0
        """Video seconds without any frame (source outages, each up to max_outage_s)."""

    @property
    def objects(self) -> list[StationaryObject]:
        """Every remembered object, seen in this frame or lost within the grace, by id."""
        return [self._objects[key] for key in sorted(self._objects)]

    def update(self, pts_s: float, tracks: Sequence[TrackedObject]) -> list[StationaryObject]:
        """Take the tracks of the frame at ``pts_s``; return the objects forgotten now."""
        if self._last_pts_s is not None and pts_s - self._last_pts_s > BLIND_GAP_S:
            self._blind_s += min(pts_s - self._last_pts_s, self.params.max_outage_s)
        self._last_pts_s = pts_s
        watched = [
            track for track in tracks if self.classes is None or track.class_name in self.classes
        ]
        shift = self._camera_shift(watched)
        for track in watched:
            obj = self._object_for(track, pts_s)
            if obj.seen_at(pts_s):
                # Two ids of one object in one frame (the old one revived): the first counts.
                continue
            self._observe(obj, track, pts_s, shift)
        return self._forget_lost(pts_s)

    def _camera_shift(self, tracks: Sequence[TrackedObject]) -> tuple[float, float]:
        """How far the camera moved every box of this frame: the median offset of the
        stationary objects from their references, when at least two agree on it."""
        offsets, limits = [], []
        for track in tracks:
            known = self._by_track.get(track.track_id)
            obj = self._objects.get(known) if known is not None else None
            if obj is None or obj.reference is None or obj.stand is None:
                continue
            (x, y) = anchor_points(np.array(track.xyxy), self.params.anchor)[0].tolist()
            offsets.append((x - obj.reference[0], y - obj.reference[1]))
            limits.append(self.params.max_displacement * _diagonal(obj.stand))
        if len(offsets) < 2:
            return (0.0, 0.0)
        points = np.array(offsets)
        dx, dy = np.median(points, axis=0).tolist()
        if (np.hypot(points[:, 0] - dx, points[:, 1] - dy) > min(limits)).any():
            return (0.0, 0.0)  # they disagree: one of them is moving, not the camera
        return (dx, dy)

    def _object_for(self, track: TrackedObject, pts_s: float) -> StationaryObject:
        known = self._by_track.get(track.track_id)
        obj = self._objects[known] if known is not None else None
        if obj is not None and (
            obj.is_stationary or pts_s - obj.first_seen_s > self.params.window_s + _EPS_S
        ):
            return obj  # settled: no longer matched against the lost ones
        heir = self._lost_stationary_at(track.xyxy, pts_s)
        if obj is not None:  # a young object
            if heir is None:
                return obj
            self._absorb(obj, heir)
        if heir is not None:
            heir.track_id = track.track_id
            self._by_track[track.track_id] = heir.object_id
            return heir
        obj = StationaryObject(
            object_id=track.track_id,
            track_id=track.track_id,
            class_name=track.class_name,
            xyxy=track.xyxy,
            confidence=track.confidence,
            first_seen_s=pts_s,
            last_seen_s=float("-inf"),
        )
        self._objects[obj.object_id] = obj
        self._by_track[track.track_id] = obj.object_id
        return obj

    def _lost_stationary_at(
        self, xyxy: tuple[float, float, float, float], pts_s: float
    ) -> StationaryObject | None:
        """The lost stationary object whose place this box is on, the best overlap first."""
        best: StationaryObject | None = None
        best_score = 0.0
        for obj in self.objects:
            if not obj.is_stationary or obj.seen_at(pts_s):
                continue
            place = obj.place
            overlap = iou(place, xyxy)
            on_place = overlap >= self.params.reid_iou or _part_of(xyxy, place)
            if on_place and (best is None or overlap > best_score):
                best, best_score = obj, overlap
        return best

    def _absorb(self, young: StationaryObject, heir: StationaryObject) -> None:
        """A young object turned out to be a lost stationary one: one object, the heir's
        identity and clock, the young one's recent boxes."""
        del self._objects[young.object_id]
        for track_id, object_id in self._by_track.items():
            if object_id == young.object_id:
                self._by_track[track_id] = heir.object_id
        heir.samples.extend(young.samples)

    def _observe(
        self,
        obj: StationaryObject,
        track: TrackedObject,
        pts_s: float,
        shift: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        first = obj.last_seen_s == float("-inf")
        obj.track_id = track.track_id
        obj.xyxy = track.xyxy
        obj.class_name = track.class_name
        obj.confidence = (
            track.confidence
            if first
            else obj.confidence + CONFIDENCE_SMOOTHING * (track.confidence - obj.confidence)
        )
        obj.last_seen_s = pts_s
        obj.blind_when_seen_s = self._blind_s
        x1, y1, x2, y2 = track.xyxy
        box: Box = (x1 - shift[0], y1 - shift[1], x2 - shift[0], y2 - shift[1])
        if obj.stand is not None:
            limit = self.params.max_displacement * _diagonal(obj.stand)
            box = _whole_of_part(box, obj.stand, limit) or box
        (x, y) = anchor_points(np.array(box), self.params.anchor)[0].tolist()
        obj.samples.append(_Sample(pts_s, x, y, _diagonal(box), box))
        # Keep the last sample at or before the window's start, so the samples span the whole
        # window: with live frames a few ms off the 0.2 s grid, dropping everything older than
        # exactly a window left a span a frame short, and the object was never judged still.
        cutoff = pts_s - self.params.window_s + _EPS_S
        while len(obj.samples) > 1 and obj.samples[1].pts_s <= cutoff:
            obj.samples.popleft()
        if obj.is_stationary:
            self._check_moved(obj, pts_s)
        else:
            self._check_still(obj, pts_s)

    def _check_still(self, obj: StationaryObject, pts_s: float) -> None:
        samples = list(obj.samples)
        if len(samples) < _MIN_SAMPLES or pts_s - samples[0].pts_s < self.params.window_s - _EPS_S:
            return
        points = np.array([(s.x, s.y) for s in samples])
        limit = self.params.max_displacement * float(np.median([s.diagonal for s in samples]))
        centre = np.median(points, axis=0)
        spread = float(np.percentile(np.hypot(*(points - centre).T), _SPREAD_PERCENTILE))
        third = max(1, len(points) // 3)
        drift = float(
            np.hypot(*(np.median(points[-third:], axis=0) - np.median(points[:third], axis=0)))
        )
        if spread <= _SPREAD_FACTOR * limit and drift <= limit:
            obj.stationary_since_s = samples[0].pts_s
            obj.reference = (float(centre[0]), float(centre[1]))
            obj.stand = obj.place
            left, obj.left = obj.left, None
            if (
                left is not None
                and pts_s - left.moved_s <= self.params.resume_s + _EPS_S
                and float(np.hypot(*(centre - np.array(left.reference)))) <= limit
            ):
                obj.stationary_since_s = left.stationary_since_s
                obj.reference, obj.stand = left.reference, left.stand

    def _check_moved(self, obj: StationaryObject, pts_s: float) -> None:
        if obj.reference is None:
            return
        recent = [s for s in obj.samples if s.pts_s >= pts_s - self.params.window_s / 2 - _EPS_S]
        if len(recent) < _MIN_SAMPLES:
            # A slow detection rate: the last few boxes, whenever they were. Fewer than that
            # in the whole window means just re-acquired: one odd (half-hidden) box is no move.
            recent = list(obj.samples)[-_MIN_SAMPLES:]
            if len(recent) < _MIN_SAMPLES:
                return
        points = np.array([(s.x, s.y) for s in recent])
        limit = self.params.max_displacement * float(np.median([s.diagonal for s in recent]))
        moved = float(np.hypot(*(np.median(points, axis=0) - np.array(obj.reference))))
        if moved > limit:
            if obj.stationary_since_s is not None and obj.stand is not None:
                obj.left = _Left(obj.reference, obj.stand, obj.stationary_since_s, pts_s)
            obj.stationary_since_s = None
            obj.reference = None
            obj.stand = None
            obj.samples = deque(recent)

    def _forget_lost(self, pts_s: float) -> list[StationaryObject]:
        lost = [
            obj
            for obj in self.objects
            if pts_s - obj.last_seen_s - (self._blind_s - obj.blind_when_seen_s)
            > self.params.lost_grace_s + _EPS_S
        ]
        for obj in lost:
            del self._objects[obj.object_id]
        gone = {obj.object_id for obj in lost}
        self._by_track = {t: o for t, o in self._by_track.items() if o not in gone}
        return lost


def _part_of(
    box: tuple[float, float, float, float], place: tuple[float, float, float, float]
) -> bool:
    """Whether ``box`` looks like a partial view of what stands at ``place``."""
    area = box_area(box)
    shared = intersection(box, place)
    return shared > 0 and shared >= _PART_INSIDE * area and area >= _PART_SIZE * box_area(place)


def _diagonal(box: Box) -> float:
    return float(np.hypot(box[2] - box[0], box[3] - box[1]))


def _whole_of_part(box: Box, stand: Box, tolerance: float) -> Box | None:
    """The whole box of what stands at ``stand`` when ``box`` shows only part of it: mostly
    inside it, at least a quarter of it, one edge of each axis where it was (within
    ``tolerance`` pixels) and the others moved inward. The whole box is ``stand`` moved
    as far as the edges still seen moved; ``None`` when ``box`` is not such a view."""
    if not _part_of(box, stand):
        return None
    offsets = [box[i] - stand[i] for i in range(4)]
    inward = [offsets[0] > tolerance, offsets[1] > tolerance]
    inward += [offsets[2] < -tolerance, offsets[3] < -tolerance]
    if not any(inward) or any(
        abs(v) > tolerance and not inw for v, inw in zip(offsets, inward, strict=True)
    ):
        return None
    shifts = []
    for low, high in ((0, 2), (1, 3)):
        seen = [offsets[i] for i in (low, high) if not inward[i]]
        if not seen:
            return None  # both edges of an axis hidden: nothing left to place it by
        shifts.append(sum(seen) / len(seen))
    dx, dy = shifts
    return (stand[0] + dx, stand[1] + dy, stand[2] + dx, stand[3] + dy)
