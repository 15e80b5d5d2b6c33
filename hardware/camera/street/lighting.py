"""How the camera exposes the street: the light of the hour (day, dusk, night), light glows,
sensor noise and the camera's shake.

All of it is applied after the scene is drawn, so one drawn scene can be shown at any hour.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from citywatch.hardware.camera.street.palette import BGR, Image

__all__ = [
    "DAY",
    "DUSK",
    "LIGHTING_PRESETS",
    "NIGHT",
    "SHAKE_MARGIN_PX",
    "Lighting",
    "add_glow",
    "lighting_matrix",
    "noise_bank",
    "shake_offset",
]

SHAKE_MARGIN_PX = 16
"""The cached street is drawn this much larger on every side, so shake never shows an edge."""


@dataclass(frozen=True, slots=True)
class Lighting:
    """A global exposure: ``gain`` and per-channel ``tint`` scale the lit scene, ``ambient``
    lifts the blacks, and ``lights`` (0–1) turns on headlights, lamps and windows."""

    gain: float = 1.0
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    ambient: tuple[float, float, float] = (0.0, 0.0, 0.0)
    lights: float = 0.0

    def mix(self, other: Lighting, weight: float) -> Lighting:
        """Linear blend towards ``other`` (``weight`` 0 → self, 1 → other)."""
        w = min(1.0, max(0.0, weight))

        def lerp3(a: tuple[float, ...], b: tuple[float, ...]) -> tuple[float, float, float]:
            return (a[0] + (b[0] - a[0]) * w, a[1] + (b[1] - a[1]) * w, a[2] + (b[2] - a[2]) * w)

        return Lighting(
            gain=self.gain + (other.gain - self.gain) * w,
            tint=lerp3(self.tint, other.tint),
            ambient=lerp3(self.ambient, other.ambient),
            lights=self.lights + (other.lights - self.lights) * w,
        )


DAY = Lighting()
DUSK = Lighting(gain=0.62, tint=(0.82, 0.95, 1.15), ambient=(6, 4, 4), lights=0.6)
NIGHT = Lighting(gain=0.26, tint=(1.3, 1.0, 0.8), ambient=(10, 7, 5), lights=1.0)
LIGHTING_PRESETS: dict[str, Lighting] = {"day": DAY, "dusk": DUSK, "night": NIGHT}


def lighting_matrix(lighting: Lighting) -> NDArray[np.float32]:
    """The 3×4 affine colour transform (per-channel gain, then ambient) for cv2.transform."""
    matrix = np.zeros((3, 4), np.float32)
    for c in range(3):
        matrix[c, c] = lighting.gain * lighting.tint[c]
        matrix[c, 3] = lighting.ambient[c]
    return matrix


@functools.lru_cache(maxsize=1)
def _glow_sprite() -> NDArray[np.float32]:
    r = np.linspace(-1, 1, 64, dtype=np.float32)
    d2 = r[None, :] ** 2 + r[:, None] ** 2
    return np.exp(-d2 * 4.0).astype(np.float32)


def add_glow(img: Image, x: float, y: float, radius: float, colour: BGR, strength: float) -> None:
    """Add a soft round glow of ``colour`` × ``strength`` centred at (x, y) (saturating)."""
    r = max(2, round(radius))
    x0, y0 = round(x) - r, round(y) - r
    hgt, wid = img.shape[:2]
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(wid, x0 + 2 * r), min(hgt, y0 + 2 * r)
    if cx1 <= cx0 or cy1 <= cy0:
        return
    sprite = cv2.resize(_glow_sprite(), (2 * r, 2 * r))[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    glow = sprite[:, :, None] * (np.asarray(colour, np.float32) * strength)
    roi = img[cy0:cy1, cx0:cx1]
    roi[:] = np.minimum(roi.astype(np.float32) + glow, 255).astype(np.uint8)


@functools.lru_cache(maxsize=4)
def noise_bank(width: int, height: int) -> Image:
    """Gaussian noise (mean 128, sd 16) a little larger than the frame; frames use random
    windows of it, which is much cheaper than drawing fresh noise per frame."""
    rng = np.random.default_rng(12345)
    noise = rng.normal(128, 16, (height + 32, width + 32, 3))
    bank = np.clip(noise, 0, 255).astype(np.uint8)
    bank.setflags(write=False)
    return bank


def shake_offset(seed: int, t_s: float, amplitude_px: float) -> tuple[int, int]:
    """The camera's small, smooth wobble at time ``t_s``: an integer pixel translation."""
    if amplitude_px <= 0:
        return (0, 0)
    phases = np.random.default_rng(seed ^ 0x5EED).uniform(0, 2 * math.pi, 4)
    dx = 0.7 * math.sin(2.1 * t_s + phases[0]) + 0.3 * math.sin(7.3 * t_s + phases[1])
    dy = 0.7 * math.sin(1.7 * t_s + phases[2]) + 0.3 * math.sin(8.9 * t_s + phases[3])
    limit = SHAKE_MARGIN_PX
    return (
        max(-limit, min(limit, round(dx * amplitude_px))),
        max(-limit, min(limit, round(dy * amplitude_px))),
    )
