"""Clips for camera alerts: from a few seconds before the alert to a few after, cut from the
frame ring and written by the evidence store once the frames after the trigger are in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from citywatch.contracts.messages import EvidenceRef
from citywatch.edge.camera.evidence import EvidenceError, EvidenceStore
from citywatch.edge.camera.frame_ring import EPS_S, BufferedFrame, FrameRing
from citywatch.hardware.camera.frames import Frame

__all__ = ["ClipReady", "ClipRecorder"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ClipReady:
    """A finished clip: publish an ``Evidence`` message with ``ref`` for alert ``name``."""

    name: str
    ref: EvidenceRef
    start_s: float
    end_s: float
    frames: int


@dataclass
class _PendingClip:
    name: str
    event_time: datetime
    end_s: float
    frames: list[BufferedFrame] = field(default_factory=list)


class ClipRecorder:
    """Cuts clips from ``before_s`` before a trigger to ``after_s`` after it.

    Call :meth:`push` with every processed frame and :meth:`trigger` when an alert starts;
    the clip is written by the :meth:`push` that reaches ``after_s`` past the trigger (or by
    :meth:`flush` when the source ends) and returned as a :class:`ClipReady`. At most
    ``max_pending`` clips record at once; a further trigger finishes the oldest early.
    """

    def __init__(
        self,
        store: EvidenceStore,
        *,
        before_s: float = 5.0,
        after_s: float = 5.0,
        ring: FrameRing | None = None,
        max_pending: int = 8,
    ) -> None:
        if before_s < 0 or after_s < 0:
            raise ValueError("before_s and after_s must be >= 0")
        self.store = store
        self.before_s = before_s
        self.after_s = after_s
        self.ring = ring or FrameRing(max_age_s=before_s + 2.0)
        if self.ring.max_age_s < before_s:
            raise ValueError(f"the ring keeps {self.ring.max_age_s}s, less than before_s")
        self.max_pending = max_pending
        self.failures = 0
        self._pending: dict[str, _PendingClip] = {}

    def push(self, frame: Frame) -> list[ClipReady]:
        """Buffer ``frame``; return the clips it completes."""
        newest = self.ring.newest
        restarted = newest is not None and frame.pts_s < newest.pts_s
        buffered = self.ring.push(frame)
        ready = []
        for clip in list(self._pending.values()):
            if restarted:  # the video clock went back: end the clip with what it has
                ready += self._finish(clip)
                continue
            if buffered.pts_s <= clip.end_s + EPS_S:
                clip.frames.append(buffered)
            if buffered.pts_s >= clip.end_s - EPS_S:
                ready += self._finish(clip)
        return ready

    def trigger(self, name: str, at_s: float, event_time: datetime) -> list[ClipReady]:
        """Start a clip for alert ``name`` at video time ``at_s`` (a repeat is ignored).

        Returns clips finished by this call: this one, if frames up to ``after_s`` past
        ``at_s`` are already buffered, or the oldest pending one, if too many record.
        """
        if name in self._pending:
            return []
        end_s = at_s + self.after_s
        start_s = at_s - self.before_s - EPS_S
        frames = [f for f in self.ring.since(start_s) if f.pts_s <= end_s + EPS_S]
        clip = _PendingClip(name, event_time, end_s, frames)
        ready = []
        if len(self._pending) >= self.max_pending:
            ready += self._finish(next(iter(self._pending.values())))
        self._pending[name] = clip
        newest = self.ring.newest
        if newest is not None and newest.pts_s >= end_s - EPS_S:
            ready += self._finish(clip)
        return ready

    def flush(self) -> list[ClipReady]:
        """Finish every pending clip with the frames it has (the source ended)."""
        ready = []
        for clip in list(self._pending.values()):
            ready += self._finish(clip)
        return ready

    @property
    def pending(self) -> tuple[str, ...]:
        return tuple(self._pending)

    def _finish(self, clip: _PendingClip) -> list[ClipReady]:
        del self._pending[clip.name]
        if not clip.frames:
            log.warning("clip %s has no frames; not written", clip.name)
            self.failures += 1
            return []
        try:
            ref = self.store.write_clip(clip.name, clip.event_time, clip.frames)
        except (EvidenceError, OSError) as exc:
            log.warning(
                "clip %s of camera %s not written: %s", clip.name, self.store.camera_id, exc
            )
            self.failures += 1
            return []
        return [
            ClipReady(clip.name, ref, clip.frames[0].pts_s, clip.frames[-1].pts_s, len(clip.frames))
        ]
