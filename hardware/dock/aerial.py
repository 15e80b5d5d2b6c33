"""A small synthetic aerial renderer: what a drone sees straight down over a city street.

Seeded and pure (numpy + OpenCV): a grass-and-soil ground texture, asphalt roads with lane
markings, cars and trucks seen from above, vendor stalls (umbrella discs) and smoke
(a semi-transparent grey plume). Objects are placed in metres east/north of the image
centre, so a caller that knows where the patch lies on Earth knows where every object is;
the ground-truth boxes come back with their class names. The simulated dock warps this
top-down patch into its camera's view; tests and the classical detector use it directly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from numpy.typing import NDArray

__all__ = ["AERIAL_CLASSES", "AerialObject", "AerialPatch", "Road", "TruthBox", "render_patch"]

Image = NDArray[np.uint8]
"""An H×W×3 BGR image, as OpenCV decodes it."""

AerialClass = Literal["car", "truck", "stall", "smoke"]
AERIAL_CLASSES: tuple[AerialClass, ...] = ("car", "truck", "stall", "smoke")

SIZES_M: dict[str, tuple[float, float]] = {
    "car": (4.6, 1.9),
    "truck": (8.5, 2.5),
    "stall": (2.6, 2.6),  # umbrella diameter
    "smoke": (14.0, 8.0),  # plume length along the wind, width
}
_PALETTE_BGR = ((40, 40, 200), (200, 80, 30), (160, 40, 170), (0, 110, 235), (35, 30, 160))
SMOKE_BOX_ALPHA = 0.3
"""The smoke's ground-truth box covers where the plume is at least this opaque."""


@dataclass(frozen=True, slots=True)
class AerialObject:
    """One object on the ground: its centre in metres east/north of the patch centre."""

    kind: AerialClass
    east_m: float
    north_m: float
    heading_deg: float = 0.0
    """Long axis direction (cars, trucks) or wind direction (smoke), clockwise from north."""


@dataclass(frozen=True, slots=True)
class Road:
    """A straight road between two points (metres east/north of the patch centre)."""

    start: tuple[float, float]
    end: tuple[float, float]
    width_m: float = 7.0


@dataclass(frozen=True, slots=True)
class TruthBox:
    """Where one planted object lies in the patch, in pixels (the renderer's ground truth)."""

    class_name: AerialClass
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True)
class AerialPatch:
    image: Image
    truth: tuple[TruthBox, ...]
    """Ground-truth boxes of every object at least partly in the image."""
    metres_per_px: float


def render_patch(
    objects: Sequence[AerialObject],
    *,
    width_px: int,
    height_px: int,
    metres_per_px: float,
    roads: Sequence[Road] = (),
    seed: int = 0,
) -> AerialPatch:
    """Render a top-down patch (north up) and the ground truth of ``objects`` in it."""
    if width_px <= 0 or height_px <= 0 or metres_per_px <= 0:
        raise ValueError("patch size and scale must be positive")
    rng = np.random.default_rng(seed)
    image = _ground(rng, width_px, height_px)
    for road in roads:
        _draw_road(image, road, metres_per_px)
    rows: list[TruthBox] = []
    for obj in sorted(objects, key=lambda o: o.kind == "smoke"):  # smoke drifts over the rest
        colour = _PALETTE_BGR[int(rng.integers(len(_PALETTE_BGR)))]
        box = _draw(image, obj, metres_per_px, colour, rng)
        if box is None:
            continue
        x1, y1, x2, y2 = box
        x1, y1 = max(x1, 0.0), max(y1, 0.0)
        x2, y2 = min(x2, float(width_px)), min(y2, float(height_px))
        if x2 > x1 and y2 > y1:
            rows.append(TruthBox(obj.kind, x1, y1, x2, y2))
    return AerialPatch(image, tuple(rows), metres_per_px)


def _ground(rng: np.random.Generator, width: int, height: int) -> Image:
    """Grass with soft patches and fine noise (green hue, never grey or saturated red/blue)."""
    base = np.array([62, 118, 84], np.float32)
    seeds = rng.normal(0, 1, (max(2, height // 40), max(2, width // 40), 3)).astype(np.float32)
    coarse = cv2.resize(seeds, (width, height), interpolation=cv2.INTER_CUBIC)
    fine = rng.normal(0, 5, (height, width, 1)).astype(np.float32)
    image = base + coarse * np.array([5, 10, 7], np.float32) + fine
    return np.clip(image, 0, 255).astype(np.uint8)


def _to_px(
    east_m: float, north_m: float, shape: tuple[int, ...], mpp: float
) -> tuple[float, float]:
    return shape[1] / 2 + east_m / mpp, shape[0] / 2 - north_m / mpp


def _draw_road(image: Image, road: Road, mpp: float) -> None:
    a = _to_px(*road.start, image.shape, mpp)
    b = _to_px(*road.end, image.shape, mpp)
    pa, pb = (round(a[0]), round(a[1])), (round(b[0]), round(b[1]))
    cv2.line(image, pa, pb, (72, 70, 70), max(1, round(road.width_m / mpp)), cv2.LINE_AA)
    length = math.dist(a, b)
    dash = max(2.0, 3.0 / mpp)
    for i in range(int(length // (2 * dash))):
        s = 2 * i * dash / length
        e = min(1.0, (2 * i + 1) * dash / length)
        p = (round(a[0] + (b[0] - a[0]) * s), round(a[1] + (b[1] - a[1]) * s))
        q = (round(a[0] + (b[0] - a[0]) * e), round(a[1] + (b[1] - a[1]) * e))
        cv2.line(image, p, q, (215, 215, 215), max(1, round(0.15 / mpp)))


def _rotated_rect(
    centre: tuple[float, float], length_px: float, width_px: float, heading_deg: float
) -> NDArray[np.float32]:
    h = math.radians(heading_deg)
    along = np.array([math.sin(h), -math.cos(h)])  # heading in image coordinates (v down)
    across = np.array([math.cos(h), math.sin(h)])
    c = np.array(centre)
    corners = [
        c + along * length_px / 2 * sa + across * width_px / 2 * sc
        for sa, sc in ((1, 1), (1, -1), (-1, -1), (-1, 1))
    ]
    return np.array(corners, np.float32)


def _draw(
    image: Image,
    obj: AerialObject,
    mpp: float,
    colour: tuple[int, int, int],
    rng: np.random.Generator,
) -> tuple[float, float, float, float] | None:
    centre = _to_px(obj.east_m, obj.north_m, image.shape, mpp)
    length_m, width_m = SIZES_M[obj.kind]
    if obj.kind in ("car", "truck"):
        corners = _rotated_rect(centre, length_m / mpp, width_m / mpp, obj.heading_deg)
        cv2.fillPoly(image, [np.round(corners).astype(np.int32)], colour, cv2.LINE_AA)
        roof = _rotated_rect(centre, length_m * 0.45 / mpp, width_m * 0.75 / mpp, obj.heading_deg)
        darker = tuple(int(c * 0.8) for c in colour)
        cv2.fillPoly(image, [np.round(roof).astype(np.int32)], darker, cv2.LINE_AA)
        return _bounds(corners)
    if obj.kind == "stall":
        radius = length_m / 2 / mpp
        other = _PALETTE_BGR[int(rng.integers(len(_PALETTE_BGR)))]
        c = (round(centre[0]), round(centre[1]))
        r = max(1, round(radius))
        for k in range(8):
            cv2.ellipse(image, c, (r, r), 0, k * 45, (k + 1) * 45, colour if k % 2 else other, -1)
        return centre[0] - radius, centre[1] - radius, centre[0] + radius, centre[1] + radius
    return _draw_smoke(image, centre, length_m / mpp, width_m / mpp, obj.heading_deg, rng)


def _draw_smoke(
    image: Image,
    centre: tuple[float, float],
    length_px: float,
    width_px: float,
    heading_deg: float,
    rng: np.random.Generator,
) -> tuple[float, float, float, float] | None:
    """A plume of soft Gaussian puffs, symmetric about ``centre`` along the wind."""
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    alpha = np.zeros((h, w), np.float32)
    heading = math.radians(heading_deg)
    along = (math.sin(heading), -math.cos(heading))
    puffs = 5
    for i in range(puffs):
        t = (i - (puffs - 1) / 2) / (puffs - 1) * (length_px - width_px)
        cx = centre[0] + along[0] * t
        cy = centre[1] + along[1] * t
        sigma = width_px / 3.2 * float(rng.uniform(0.9, 1.1))
        alpha = np.maximum(alpha, np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2)))
    alpha *= 0.8
    grey = np.array([196, 198, 196], np.float32)
    blended = image.astype(np.float32) * (1 - alpha[..., None]) + grey * alpha[..., None]
    image[:] = np.clip(blended, 0, 255).astype(np.uint8)
    ys, xs = np.nonzero(alpha >= SMOKE_BOX_ALPHA)
    if len(xs) == 0:
        return None
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def _bounds(points: NDArray[np.float32]) -> tuple[float, float, float, float]:
    return (
        float(points[:, 0].min()),
        float(points[:, 1].min()),
        float(points[:, 0].max()),
        float(points[:, 1].max()),
    )
