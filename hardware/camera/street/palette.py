"""Colours and pixels shared by the street renderer's parts: the image and colour types, the
bright palette (umbrellas, shirts, shop signs, truth boxes) and small colour helpers.

Everything is BGR, as OpenCV draws it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = ["BGR", "BRIGHT", "Image", "jitter", "pick", "shaded"]

Image = NDArray[np.uint8]
BGR = tuple[int, int, int]

BRIGHT: tuple[BGR, ...] = (
    (40, 40, 200), (30, 140, 240), (40, 200, 240), (60, 160, 40), (180, 110, 30),
    (150, 50, 140), (240, 240, 240), (40, 90, 200), (200, 170, 40), (90, 60, 180),
)  # fmt: skip


def pick(rng: np.random.Generator, options: Sequence[BGR]) -> BGR:
    """One of ``options``, uniformly."""
    return options[int(rng.integers(len(options)))]


def jitter(rng: np.random.Generator, colour: BGR, amount: int = 12) -> BGR:
    """``colour`` with each channel moved by up to ``amount``, so no two actors match."""
    c = np.clip(np.asarray(colour) + rng.integers(-amount, amount + 1, 3), 0, 255)
    return (int(c[0]), int(c[1]), int(c[2]))


def shaded(colour: BGR, factor: float) -> BGR:
    """``colour`` darkened (``factor`` < 1) or lightened, clipped to 255."""
    return (
        min(255, int(colour[0] * factor)),
        min(255, int(colour[1] * factor)),
        min(255, int(colour[2] * factor)),
    )
