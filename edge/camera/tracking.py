"""Object tracking: stable integer ids for detections across frames, timed by video seconds.

A thin wrapper over Roboflow's ``trackers.ByteTrackTracker`` (the successor of the ByteTrack
that supervision removed in 0.27): detections go in as ``sv.Detections`` with a ``class_id``
per class name, tracks come back with the class name they were detected as. Each update
passes the frame's ``pts_s``, so the lost-track buffer is measured in video seconds and a
track survives a few seconds of missed detections whatever the detect rate.

supervision and trackers (with scipy behind them) are imported when a ``Tracker`` is made,
not with this module: the rule core imports ``TrackedObject`` and must stay cheap to load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from citywatch.config.camera import TrackerConfig
from citywatch.models.detections import Detections

if TYPE_CHECKING:
    from trackers import ByteTrackTracker

__all__ = ["TrackedObject", "Tracker"]

_TRACKERS_REFERENCE_FPS = 30.0
"""``ByteTrackTracker`` counts its lost buffer in frames at 30 fps."""


@dataclass(frozen=True, slots=True)
class TrackedObject:
    """One tracked detection of the current frame, in pixels."""

    track_id: int
    xyxy: tuple[float, float, float, float]
    confidence: float
    class_name: str


class Tracker:
    """ByteTrack for one camera; ids are per instance, so a replay gets the live run's ids."""

    def __init__(self, config: TrackerConfig, frame_rate: float) -> None:
        self.config = config
        self.frame_rate = frame_rate
        self._class_ids: dict[str, int] = {}
        self._class_names: list[str] = []
        self._id_offset = 0
        self._next_id = 0
        self._tracker = self._new_tracker()

    def _new_tracker(self) -> ByteTrackTracker:
        from trackers import ByteTrackTracker

        config = self.config
        return ByteTrackTracker(
            lost_track_buffer=max(
                1, round(config.lost_buffer.total_seconds() * _TRACKERS_REFERENCE_FPS)
            ),
            frame_rate=self.frame_rate,
            track_activation_threshold=config.activation_confidence,
            minimum_consecutive_frames=config.min_consecutive_frames,
            minimum_iou_threshold=config.min_iou,
            high_conf_det_threshold=config.high_confidence,
        )

    def update(self, detections: Detections, pts_s: float) -> list[TrackedObject]:
        """Match ``detections`` of the frame at ``pts_s`` to tracks; the confirmed ones, by id.

        Detections not (yet) part of a confirmed track are left out: a new object gets its id
        after ``min_consecutive_frames`` frames.
        """
        import supervision as sv

        class_id = np.array([self._class_id(name) for name in detections.class_name], dtype=int)
        tracked = self._tracker.update(
            sv.Detections(
                xyxy=detections.xyxy.astype(np.float32).reshape(-1, 4),
                confidence=detections.confidence.astype(np.float32),
                class_id=class_id,
            ),
            timestamp=float(pts_s),
        )
        if tracked.tracker_id is None or tracked.class_id is None or tracked.confidence is None:
            return []
        objects = [
            TrackedObject(
                track_id=int(track_id) + self._id_offset,
                xyxy=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
                confidence=float(conf),
                class_name=self._class_names[int(cid)],
            )
            for box, conf, cid, track_id in zip(
                tracked.xyxy.tolist(),
                tracked.confidence.tolist(),
                tracked.class_id.tolist(),
                tracked.tracker_id.tolist(),
                strict=True,
            )
            if track_id >= 0
        ]
        if objects:
            self._next_id = max(self._next_id, max(o.track_id for o in objects) + 1)
        return sorted(objects, key=lambda o: o.track_id)

    def reset(self, config: TrackerConfig | None = None, frame_rate: float | None = None) -> None:
        """Forget every track (new settings, or the stream restarted its clock).

        New ids continue after the last one given out, so an id never names two objects.
        """
        self.config = config or self.config
        self.frame_rate = frame_rate or self.frame_rate
        self._id_offset = self._next_id
        self._tracker = self._new_tracker()

    def _class_id(self, name: str) -> int:
        known = self._class_ids.get(name)
        if known is None:
            known = self._class_ids[name] = len(self._class_names)
            self._class_names.append(name)
        return known
