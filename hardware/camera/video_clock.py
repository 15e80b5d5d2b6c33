"""Video time for the detector: a live stream's own clock, and which frames are due.

Kept apart from opening and reading sources (:mod:`citywatch.hardware.camera.video_source`)
because replay and the camera pipeline need the same cadence without a source, and because
the live clock is where "live equals replay" is decided.
"""

from __future__ import annotations

import math

__all__ = ["STREAM_CLOCK_SLIP_S", "DetectionCadence", "StreamClock"]

STREAM_CLOCK_SLIP_S = 5.0
"""A live stream whose timestamps run this far from the wall clock is re-based on it (the
camera's clock jumped, or it restarted its stream)."""


class StreamClock:
    """Live ``pts``: the stream's timestamps within a connection, laid on the wall clock
    where the connection's first frame arrived; the wall clock when there are none.

    OpenCV reports for an H.264 stream's frame the timestamp of the frame before it (the
    first two both read 0): a repeat on the second frame marks that lag of one frame
    period, added back to every later frame, so frame k sits k periods after the first as
    in the file. A jump of the timestamps by more than a frame period counts the frames
    in between as lost (the network or the camera dropped them)."""

    def __init__(self) -> None:
        self._base: tuple[float, float] | None = None  # (wall s, stream ms) of the first frame
        self._last_ms = -math.inf
        self._frames = 0
        self._lag_s = 0.0
        self.lost = 0
        """Frames the stream's timestamps skipped, over the clock's life."""

    def rebase(self) -> None:
        self._base, self._last_ms, self._frames, self._lag_s = None, -math.inf, 0, 0.0

    def pts(self, wall_s: float, stream_ms: float, period_s: float) -> float:
        """The frame's time: on the stream's clock since the connection's first frame; a
        timestamp that is missing, goes back, or slipped from the wall clock starts the
        count again from this frame's wall time."""
        self._frames += 1
        valid = math.isfinite(stream_ms) and stream_ms >= 0
        if valid and self._frames == 2 and stream_ms == self._last_ms:
            self._lag_s = period_s
        advanced = valid and (stream_ms > self._last_ms or self._frames == 2)
        if advanced and period_s > 0 and math.isfinite(self._last_ms):
            self.lost += max(0, round((stream_ms - self._last_ms) / 1000 / period_s) - 1)
        self._last_ms = stream_ms if valid else -math.inf
        if self._base is not None and advanced:
            pts_s = self._base[0] + (stream_ms - self._base[1]) / 1000 + self._lag_s
            if abs(pts_s - wall_s) <= STREAM_CLOCK_SLIP_S:
                return pts_s
        self._base = (wall_s, stream_ms) if valid else None
        self._lag_s = 0.0 if self._frames > 2 else self._lag_s
        return wall_s


class DetectionCadence:
    """Which frames the detector sees at ``detect_fps``: one per period of video time, on a
    fixed schedule that never falls a whole period behind after a stall. Shared by the
    live source and ``replay --detections`` so both pick the same frames."""

    def __init__(self, detect_fps: float | None) -> None:
        self.period_s = 1.0 / detect_fps if detect_fps else None
        self._next_due_s: float | None = None

    def due(self, pts_s: float, slack_s: float = 0.0) -> bool:
        """Whether the frame at ``pts_s`` is due; ``slack_s`` absorbs rounding of file
        times (a quarter of a frame period)."""
        if self.period_s is None:
            return True
        if self._next_due_s is None or pts_s + slack_s >= self._next_due_s:
            due = self._next_due_s if self._next_due_s is not None else pts_s
            self._next_due_s = max(due + self.period_s, pts_s + self.period_s / 2)
            return True
        return False
