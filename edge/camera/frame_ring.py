"""Frames kept in memory for evidence: the ring of the last seconds of processed frames (a clip
can start before its alert did) and, per episode, the most confident frame for the snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from citywatch.edge.camera.evidence import Box, EvidenceError, encode_jpeg
from citywatch.hardware.camera.frames import Frame
from citywatch.models.detections import Image

__all__ = ["EPS_S", "BestFrame", "BestShot", "BufferedFrame", "FrameRing"]

EPS_S = 1e-6  # frame times are sums of float steps: 12 * 0.2 > 2.4


@dataclass(frozen=True, slots=True)
class BufferedFrame:
    """A processed frame kept as JPEG bytes (a tenth of the raw size or less)."""

    index: int
    pts_s: float
    jpeg: bytes

    def image(self) -> Image:
        decoded = cv2.imdecode(np.frombuffer(self.jpeg, np.uint8), cv2.IMREAD_COLOR)
        if decoded is None:
            raise EvidenceError(f"buffered frame {self.index} does not decode")
        return np.asarray(decoded, dtype=np.uint8)


class FrameRing:
    """The most recent frames, no older than ``max_age_s`` behind the newest and at most
    ``max_frames`` and ``max_bytes`` of JPEG. A frame whose time goes backwards (the source
    restarted) empties the ring, so a clip never splices two runs together."""

    def __init__(
        self,
        *,
        max_age_s: float = 10.0,
        max_frames: int = 300,
        max_bytes: int = 32 * 1024 * 1024,
        jpeg_quality: int = 80,
    ) -> None:
        if max_age_s <= 0 or max_frames < 1 or max_bytes < 1:
            raise ValueError("max_age_s, max_frames and max_bytes must be positive")
        self.max_age_s = max_age_s
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.jpeg_quality = jpeg_quality
        self._frames: list[BufferedFrame] = []
        self._bytes = 0

    def push(self, frame: Frame) -> BufferedFrame:
        """Encode and keep ``frame``; drop what falls outside the bounds."""
        if self._frames and frame.pts_s < self._frames[-1].pts_s:
            self.clear()
        buffered = BufferedFrame(
            frame.index, frame.pts_s, encode_jpeg(frame.image, self.jpeg_quality)
        )
        self._frames.append(buffered)
        self._bytes += len(buffered.jpeg)
        oldest_kept = frame.pts_s - self.max_age_s
        drop = 0
        while drop < len(self._frames) - 1 and (
            self._frames[drop].pts_s < oldest_kept - EPS_S
            or len(self._frames) - drop > self.max_frames
            or self._bytes > self.max_bytes
        ):
            self._bytes -= len(self._frames[drop].jpeg)
            drop += 1
        del self._frames[:drop]
        return buffered

    def since(self, start_s: float) -> list[BufferedFrame]:
        """The kept frames at or after video time ``start_s``, oldest first."""
        return [f for f in self._frames if f.pts_s >= start_s]

    def clear(self) -> None:
        self._frames.clear()
        self._bytes = 0

    @property
    def newest(self) -> BufferedFrame | None:
        return self._frames[-1] if self._frames else None

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._frames)


# --- the best frame of an episode ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class BestShot:
    confidence: float
    frame: Frame
    box: tuple[float, float, float, float]


class BestFrame:
    """The most confident (frame, box) seen per episode, for the alert's snapshot.

    At most ``max_episodes`` are kept; the oldest is forgotten first, so an episode the
    caller never pops cannot grow memory without bound.
    """

    def __init__(self, max_episodes: int = 64) -> None:
        self.max_episodes = max_episodes
        self._best: dict[str, BestShot] = {}

    def offer(self, episode_id: str, confidence: float, frame: Frame, box: Box) -> bool:
        """Keep this frame if it beats the episode's best; return whether it did."""
        known = self._best.get(episode_id)
        if known is not None and known.confidence >= confidence:
            return False
        # A copy: a source may reuse its frame buffer for the next frame.
        kept = Frame(frame.image.copy(), frame.index, frame.pts_s)
        x1, y1, x2, y2 = (float(v) for v in box)
        self._best[episode_id] = BestShot(confidence, kept, (x1, y1, x2, y2))
        while len(self._best) > self.max_episodes:
            del self._best[next(iter(self._best))]
        return True

    def get(self, episode_id: str) -> BestShot | None:
        return self._best.get(episode_id)

    def pop(self, episode_id: str) -> BestShot | None:
        """The best shot, forgotten (call when the episode ends)."""
        return self._best.pop(episode_id, None)

    def __len__(self) -> int:
        return len(self._best)
