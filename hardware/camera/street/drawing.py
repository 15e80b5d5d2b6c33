"""How each actor is drawn: a vehicle, a person or a stall in its own metres with a
:class:`Pen`, and a smoke plume alpha-blended into the frame.

Each drawing function returns the actor's full box in pixels and the parts of it that are
opaque, which the renderer uses to tell what nearer actors hide.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import cv2
import numpy as np
from numpy.typing import NDArray

from citywatch.hardware.camera.street.actors import PersonLook, SmokeLook, StallLook, VehicleLook
from citywatch.hardware.camera.street.layout import Box
from citywatch.hardware.camera.street.palette import BGR, Image, shaded

__all__ = [
    "SMOKE_BOX_ALPHA",
    "Drawn",
    "Pen",
    "draw_person",
    "draw_smoke",
    "draw_stall",
    "draw_vehicle",
]

SMOKE_BOX_ALPHA = 0.15
"""The smoke's box covers where the plume is at least this opaque."""

Drawn = tuple[Box, list[Box], list[tuple[float, float, float, BGR]]]
"""(full box, boxes that hide what is behind, light glows (x, y, radius, colour))."""


class Pen:
    """Draws in an actor's own metres: x along its facing from its bottom-centre, y up."""

    def __init__(self, img: Image, bx: float, by: float, s: float, facing: int = 1) -> None:
        self.img, self.bx, self.by, self.s, self.f = img, bx, by, s, facing

    def at(self, x: float, y: float) -> tuple[int, int]:
        return (round(self.bx + self.f * x * self.s), round(self.by - y * self.s))

    def size(self, metres: float) -> int:
        return max(1, round(metres * self.s))

    def poly(self, points: Sequence[tuple[float, float]], colour: BGR) -> None:
        arr = np.asarray(points, dtype=np.float32)
        px = np.empty_like(arr)
        px[:, 0] = self.bx + self.f * arr[:, 0] * self.s
        px[:, 1] = self.by - arr[:, 1] * self.s
        cv2.fillPoly(self.img, [np.round(px).astype(np.int32)], colour, cv2.LINE_AA)

    def rect(self, x0: float, y0: float, x1: float, y1: float, colour: BGR) -> None:
        self.poly(((x0, y0), (x0, y1), (x1, y1), (x1, y0)), colour)

    def circle(self, x: float, y: float, r: float, colour: BGR) -> None:
        cv2.circle(self.img, self.at(x, y), self.size(r), colour, -1, cv2.LINE_AA)

    def line(self, a: tuple[float, float], b: tuple[float, float], colour: BGR, w: float) -> None:
        cv2.line(self.img, self.at(*a), self.at(*b), colour, self.size(w), cv2.LINE_AA)

    def shadow(self, half_m: float, depth_m: float) -> None:
        axes = (self.size(half_m), self.size(depth_m))
        cv2.ellipse(self.img, self.at(0, 0), axes, 0, 0, 360, (28, 28, 30), -1)

    def box(self, x0: float, x1: float, top: float, bottom: float = 0.0) -> Box:
        """A pixel box from metres left/right of the bottom-centre and heights above ground."""
        (ax, ay), (bx, by) = self.at(x0, top), self.at(x1, bottom)
        return (float(min(ax, bx)), float(ay), float(max(ax, bx)), float(by))


_GLASS: BGR = (75, 62, 52)


def _wheels(pen: Pen, xs: Sequence[float], r: float) -> None:
    for x in xs:
        pen.circle(x, r, r * 1.12, (25, 25, 25))
        pen.circle(x, r, r, (35, 35, 38))
        pen.circle(x, r, r * 0.55, (150, 150, 155))


def _draw_bus(pen: Pen, look: VehicleLook) -> list[Box]:
    half, h, c = look.length_m / 2, look.height_m, look.colour
    pen.poly(((-half, 0.3), (-half, h - 0.15), (-half + 0.2, h), (half - 0.35, h),
              (half, h - 0.35), (half, 0.3)), c)  # fmt: skip
    pen.rect(-half, 0.3, half, 0.75, look.accent)
    pen.rect(-half + 0.35, 1.25, half - 1.8, h - 0.45, _GLASS)
    for k in range(1, int((look.length_m - 2.2) / 1.35)):
        px = -half + 0.35 + k * 1.35
        pen.rect(px, 1.2, px + 0.12, h - 0.4, c)
    pen.rect(half - 1.65, 0.45, half - 0.75, h - 0.5, (60, 55, 50))  # door
    pen.poly(
        ((half - 0.2, 0.95), (half - 0.2, h - 0.45), (half - 0.05, h - 0.45), (half, 0.95)), _GLASS
    )
    pen.rect(half - 1.7, h - 0.4, half - 0.4, h - 0.12, (20, 20, 20))  # destination sign
    pen.rect(half - 1.6, h - 0.33, half - 0.6, h - 0.2, (0, 150, 255))
    _wheels(pen, (half - 2.3, -half + 2.7), 0.5)
    return [pen.box(-half, half, h, 0.2)]


def _draw_truck(pen: Pen, look: VehicleLook) -> list[Box]:
    half, h, c = look.length_m / 2, look.height_m, look.colour
    cab = half - 2.1
    pen.rect(-half + 0.2, 0.45, half - 0.1, 0.95, (40, 40, 42))  # chassis
    pen.poly(((cab, 0.5), (cab, 2.6), (half - 0.55, 2.6), (half, 1.6), (half, 0.5)), c)
    pen.poly(((cab + 0.9, 2.45), (half - 0.65, 2.45), (half - 0.2, 1.7), (cab + 0.9, 1.7)), _GLASS)
    pen.rect(-half, 0.9, cab - 0.1, h, look.accent)  # cargo box
    pen.rect(-half, 1.5, cab - 0.1, 1.75, shaded(c, 0.9))
    pen.line((cab - 0.1, h), (cab - 0.1, 0.9), (90, 90, 90), 0.03)
    rear = (-half + 1.3,) if look.length_m < 7.5 else (-half + 1.3, -half + 2.4)
    _wheels(pen, (half - 1.2, *rear), 0.48)
    return [pen.box(-half, cab, h, 0.9), pen.box(cab, half, 2.6, 0.3)]


_CAR_SHAPES = {
    # (belt height, cabin rear, roof rear, roof front, cabin front), as fractions of half length
    "sedan": (0.92, -0.72, -0.42, 0.12, 0.55),
    "hatch": (0.92, -0.95, -0.82, 0.08, 0.55),
    "suv": (1.02, -0.97, -0.9, 0.2, 0.6),
}


def _draw_car(pen: Pen, look: VehicleLook) -> list[Box]:
    half, h, c = look.length_m / 2, look.height_m, look.colour
    if look.body == "van":
        pen.poly(((-half, 0.28), (-half, h), (half * 0.35, h), (half * 0.9, 1.05), (half, 0.85),
                  (half, 0.28)), c)  # fmt: skip
        pen.poly(((half * 0.45, h - 0.12), (half * 0.86, 1.08), (half * 0.3, 1.08),
                  (half * 0.3, h - 0.12)), _GLASS)  # fmt: skip
        pen.rect(-half * 0.85, 1.15, half * 0.2, h - 0.2, _GLASS)
        parts = [pen.box(-half, half, h, 0.2)]
        belt = 1.0
    else:
        belt, rear, roof0, roof1, front = _CAR_SHAPES[look.body]
        pen.poly(((-half, 0.28), (-half, belt - 0.12), (-half * 0.9, belt), (half * 0.6, belt),
                  (half * 0.95, belt - 0.16), (half, belt - 0.3), (half, 0.28)), c)  # fmt: skip
        pen.poly(((rear * half, belt - 0.02), (roof0 * half, h), (roof1 * half, h),
                  (front * half, belt - 0.02)), c)  # fmt: skip
        pen.poly((((rear + 0.09) * half, belt + 0.02), (roof0 * half + 0.08, h - 0.09),
                  (roof1 * half - 0.02, h - 0.09), ((front - 0.1) * half, belt + 0.02)), _GLASS)  # fmt: skip
        pillar = ((roof0 + roof1) / 2 - 0.02) * half
        pen.rect(pillar, belt, pillar + 0.1, h - 0.05, c)
        parts = [
            pen.box(-half, half, belt, 0.2),
            pen.box(min(rear, roof0) * half, front * half, h, belt),
        ]
    pen.line((0.05 * half, belt - 0.05), (0.05 * half, 0.4), shaded(c, 0.6), 0.02)  # door gap
    _wheels(pen, (half * 0.64, -half * 0.62), 0.33)
    return parts


def draw_vehicle(img: Image, look: VehicleLook, bx: float, by: float, s: float, f: int) -> Drawn:
    pen = Pen(img, bx, by, s, f)
    half = look.length_m / 2
    pen.shadow(half * 1.04, 0.16)
    draw = {"bus": _draw_bus, "box": _draw_truck}.get(look.body, _draw_car)
    parts = draw(pen, look)
    lights_y = {"bus": 0.75, "box": 0.8}.get(look.body, 0.72)
    pen.rect(half - 0.25, lights_y - 0.08, half - 0.02, lights_y + 0.06, (190, 235, 245))
    pen.rect(-half, lights_y, -half + 0.18, lights_y + 0.14, (30, 30, 200))
    head, tail = pen.at(half - 0.1, lights_y), pen.at(-half + 0.05, lights_y + 0.07)
    glows = [(*head, 0.55 * s, (200, 245, 255)), (*tail, 0.3 * s, (40, 40, 255))]
    return (
        pen.box(-half, half, look.height_m),
        parts,
        [(float(x), float(y), r, c) for x, y, r, c in glows],
    )


def draw_person(
    img: Image, look: PersonLook, bx: float, by: float, s: float, f: int, phase: float | None
) -> Drawn:
    pen = Pen(img, bx, by, s, f)
    h = look.height_m
    stride = 0.0 if phase is None else 0.17 * h * math.sin(phase)
    hip, shoulder = 0.5 * h, 0.81 * h
    for sign, shade in ((-1, 0.8), (1, 1.0)):
        pen.line(
            (sign * 0.03 * h, hip), (sign * stride, 0.04), shaded(look.trousers, shade), 0.075 * h
        )
        pen.circle(sign * stride, 0.04, 0.045 * h, (30, 30, 30))
    pen.poly(((-0.11 * h, hip - 0.02 * h), (-0.12 * h, shoulder), (-0.07 * h, shoulder + 0.03 * h),
              (0.07 * h, shoulder + 0.03 * h), (0.12 * h, shoulder), (0.11 * h, hip - 0.02 * h)),
             look.shirt)  # fmt: skip
    hand = (-0.5 * stride + 0.02 * h, hip - 0.02 * h)
    pen.line((0.0, shoulder - 0.02 * h), hand, shaded(look.shirt, 0.8), 0.05 * h)
    pen.circle(*hand, 0.025 * h, look.skin)
    if look.bag:
        pen.rect(-0.2 * h, 0.55 * h, -0.13 * h, 0.72 * h, (40, 50, 70))
    pen.circle(0.0, 0.92 * h, 0.068 * h, look.skin)
    r = pen.size(0.068 * h)
    hx, hy = pen.at(0.0, 0.92 * h)
    cv2.ellipse(
        img, (hx, hy - r // 4), (r, max(1, round(r * 0.8))), 0, 180, 360, look.hair, -1, cv2.LINE_AA
    )
    half = max(0.14 * h, abs(stride) + 0.05 * h)
    box = pen.box(-half - (0.07 * h if look.bag else 0.0), half, h)
    return box, [box], []


def draw_stall(img: Image, look: StallLook, bx: float, by: float, s: float) -> Drawn:
    pen = Pen(img, bx, by, s)
    d, cart, top = look.umbrella_m / 2, 0.8, 0.95
    pen.shadow(0.9, 0.12)
    for wx in (-0.55, 0.55):
        pen.circle(wx, 0.2, 0.2, (30, 30, 30))
    pen.rect(-cart, 0.3, cart, top, look.cart)
    pen.rect(-cart - 0.05, top, cart + 0.05, top + 0.08, shaded(look.cart, 1.3))
    for k, colour in enumerate(look.goods):
        pen.circle(-cart + 0.25 + k * 0.35, top + 0.16, 0.12, colour)
    pen.rect(-0.03, top, 0.03, 2.2, (60, 60, 60))  # pole
    apex, rim_y = 2.75, 2.1
    angles = np.linspace(math.pi, 0.0, look.segments + 1)
    rim = [(d * math.cos(a), rim_y + 0.12 * math.sin(a)) for a in angles]
    for k in range(look.segments):
        colour = look.umbrella[k % 2]
        pen.poly(((0.0, apex), rim[k], rim[k + 1]), colour)
        pen.poly(
            (rim[k], ((rim[k][0] + rim[k + 1][0]) / 2, rim_y - 0.12), rim[k + 1]),
            shaded(colour, 0.85),
        )
    wide = max(d, cart + 0.05)
    parts = [pen.box(-d, d, apex, rim_y - 0.12), pen.box(-cart, cart, top + 0.1, 0.1)]
    return pen.box(-wide, wide, apex), parts, []


@functools.lru_cache(maxsize=64)
def _puffs(seed: int) -> NDArray[np.float32]:
    """Fixed per-plume puff jitter: (side offset, size factor, wobble phase) per puff."""
    rng = np.random.default_rng(seed)
    return np.stack(
        [rng.uniform(-1, 1, 18), rng.uniform(0.75, 1.25, 18), rng.uniform(0, 2 * math.pi, 18)],
        axis=1,
    ).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _wisp_texture() -> NDArray[np.float32]:
    """Low-frequency noise that breaks the puffs' round outlines into wisps."""
    rng = np.random.default_rng(7)
    small = rng.random((12, 12)).astype(np.float32)
    big = cv2.resize(small, (96, 96), interpolation=cv2.INTER_CUBIC)
    return np.clip(np.tile(big, (2, 2)), 0, 1)


def draw_smoke(
    img: Image, look: SmokeLook, bx: float, by: float, s: float, min_contrast: float
) -> Box | None:
    """Alpha-blend the plume into ``img``; returns the box of where it is visible: alpha
    above :data:`SMOKE_BOX_ALPHA` and changing the background by at least ``min_contrast``
    grey levels (white steam against a white wall is not there for the camera), or None."""
    height = max(0.3, look.height_m)
    jitter = _puffs(look.seed)
    n = len(jitter)
    u = (np.arange(n, dtype=np.float32) / n + look.time_s * 0.07) % 1.0
    rise = u * height
    radius = height * (0.08 + 0.2 * u) * jitter[:, 1]
    wobble = 0.07 * height * np.sin(2 * math.pi * look.time_s * 0.2 + jitter[:, 2]) * u
    cx = look.lean * rise + jitter[:, 0] * 0.18 * height * u + wobble
    alpha = look.opacity * (1 - u) ** 0.6 * np.minimum(1.0, 0.6 + u / 0.08)
    x0, x1 = float((cx - radius).min()) - 0.3, float((cx + radius).max()) + 0.3
    top = float((rise + radius).max()) + 0.2
    px0, py0 = bx + x0 * s, by - top * s
    hgt, wid = img.shape[:2]
    span_w, span_h = (x1 - x0) * s, (top + 0.15) * s
    if px0 + span_w <= 0 or py0 + span_h <= 0 or px0 >= wid or py0 >= hgt:
        return None
    # Draw the alpha at a coarse scale (cheap), soften it, then stretch it over the plume.
    down = max(1.0, span_w / 100)
    ms = s / down
    mw, mh = max(4, round(span_w / down)), max(4, round(span_h / down))
    amap = np.zeros((mh, mw), np.float32)
    for i in np.argsort(-u):
        centre = (round((cx[i] - x0) * ms), round((top - rise[i]) * ms))
        cv2.circle(amap, centre, max(1, round(radius[i] * ms)), float(alpha[i]), -1, cv2.LINE_AA)
    amap = cv2.GaussianBlur(amap, (0, 0), max(0.8, float(radius.mean()) * ms * 0.22)).astype(
        np.float32, copy=False
    )
    tex = _wisp_texture()
    offset = int(look.time_s * 6) % 96
    amap *= 0.5 + 0.75 * cv2.resize(tex[offset : offset + 96, :96], (mw, mh))
    np.minimum(amap, 0.92, out=amap)
    ix0, iy0 = round(px0), round(py0)
    full = cv2.resize(amap, (max(1, round(span_w)), max(1, round(span_h))))
    cx0, cy0 = max(0, ix0), max(0, iy0)
    cx1, cy1 = min(wid, ix0 + full.shape[1]), min(hgt, iy0 + full.shape[0])
    if cx1 <= cx0 or cy1 <= cy0:
        return None
    a = np.ascontiguousarray(full[cy0 - iy0 : cy1 - iy0, cx0 - ix0 : cx1 - ix0])
    roi = img[cy0:cy1, cx0:cx1]
    colour = _flat(look.shade, hgt, wid)[: roi.shape[0], : roi.shape[1]]
    step = 2 if min(a.shape) < 120 else 4
    sample = a[::step, ::step]
    contrast = cv2.absdiff(roi[::step, ::step], colour[::step, ::step]).max(axis=2)
    visible = (sample > SMOKE_BOX_ALPHA) & (sample * contrast >= min_contrast)
    roi[:] = cv2.blendLinear(roi, colour, 1.0 - a, a)
    cols, rows = np.flatnonzero(visible.any(axis=0)), np.flatnonzero(visible.any(axis=1))
    if not len(cols):
        return None
    box = [cx0 + cols[0] * step, cy0 + rows[0] * step]
    box += [cx0 + (cols[-1] + 1) * step, cy0 + (rows[-1] + 1) * step]
    # Where the plume runs off the frame, keep its full extent there, so the truth's
    # visibility counts the part outside.
    full_box = (float(ix0), float(iy0), float(ix0 + full.shape[1]), float(iy0 + full.shape[0]))
    for side, edge in enumerate((0, 0, wid, hgt)):
        if abs(box[side] - edge) <= step:
            box[side] = full_box[side]
    return (
        float(box[0]),
        float(box[1]),
        float(min(box[2], full_box[2])),
        float(min(box[3], full_box[3])),
    )


@functools.lru_cache(maxsize=8)
def _flat(shade: int, height: int, width: int) -> Image:
    """A frame-sized plane of the smoke's colour (slightly blue-white), cached per shade."""
    plane = np.empty((height, width, 3), np.uint8)
    plane[:] = (shade, min(255, shade + 2), min(255, shade + 6))
    plane.setflags(write=False)
    return plane
