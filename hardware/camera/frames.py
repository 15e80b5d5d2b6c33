"""One decoded video frame with the video's own clock, as every source yields it.

Dwell and persistence are timed by ``pts_s`` (seconds of video since the source opened),
never by the wall clock, so a replayed recording gives the same alerts as the live run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["Frame"]


@dataclass(frozen=True, slots=True)
class Frame:
    """``image`` is H×W×3 BGR uint8; ``index`` counts source frames from 0 (skipped ones
    included); ``pts_s`` is monotonic video time in seconds."""

    image: NDArray[np.uint8]
    index: int
    pts_s: float

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])
