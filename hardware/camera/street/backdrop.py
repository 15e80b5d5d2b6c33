"""The static street: sky, buildings, road, sidewalks, lamps and trees, drawn once per size
and layout and cached, with the windows, shop fronts and lamps that light up at night.

It is drawn :data:`~citywatch.hardware.camera.street.lighting.SHAKE_MARGIN_PX` larger on every side,
so a shaking camera never shows its edge.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from citywatch.hardware.camera.street.drawing import Pen
from citywatch.hardware.camera.street.layout import StreetLayout
from citywatch.hardware.camera.street.lighting import SHAKE_MARGIN_PX
from citywatch.hardware.camera.street.palette import BGR, BRIGHT, Image, jitter, pick, shaded

__all__ = ["Backdrop", "backdrop_for"]


@dataclass(frozen=True)
class Backdrop:
    image: Image
    lights: Image
    """Windows, shop fronts and lamps, added at dusk and night."""
    lights_rows: int
    """Rows below this hold no lights."""


@dataclass(frozen=True)
class _Ground:
    """Pixel positions on the ground of the cached canvas (``SHAKE_MARGIN_PX`` larger)."""

    layout: StreetLayout
    width: int
    height: int

    def row(self, z: float) -> int:
        return round(self.layout.y_at(z) * self.height) + SHAKE_MARGIN_PX

    def col(self, x_m: float, z: float) -> float:
        """Column of a point ``x_m`` metres along the street from the image centre."""
        return self.width / 2 + x_m * self.layout.px_per_m(z, self.height) + SHAKE_MARGIN_PX


_FACADES: tuple[BGR, ...] = (
    (170, 190, 205), (120, 130, 150), (90, 100, 160), (190, 190, 185),
    (150, 160, 160), (110, 140, 175), (200, 205, 215),
)  # fmt: skip


@functools.lru_cache(maxsize=16)
def backdrop_for(layout: StreetLayout, width: int, height: int, seed: int) -> Backdrop:
    """The empty street (drawn ``SHAKE_MARGIN_PX`` larger on each side) and its night lights."""
    rng = np.random.default_rng(seed)
    g = _Ground(layout, width, height)
    img = np.zeros((height + 2 * SHAKE_MARGIN_PX, width + 2 * SHAKE_MARGIN_PX, 3), np.uint8)
    lights = np.zeros_like(img)
    _draw_skyline(img, lights, g, rng)
    _draw_road(img, g, rng)
    _draw_sidewalk(img, g, rng)
    _draw_far_sidewalk(img, lights, g, rng)
    lights = cv2.GaussianBlur(lights, (0, 0), max(1.0, height / 400)).astype(np.uint8, copy=False)
    img.setflags(write=False)
    lights.setflags(write=False)
    lit_rows = np.flatnonzero(lights.any(axis=(1, 2)))
    return Backdrop(img, lights, int(lit_rows[-1]) + 1 if len(lit_rows) else 0)


def _draw_skyline(img: Image, lights: Image, g: _Ground, rng: np.random.Generator) -> None:
    """Sky and a row of buildings with windows and shop fronts (some lit at night)."""
    ground = g.row(g.layout.building_z_m)
    sky_top, sky_low = np.array([215, 170, 120]), np.array([235, 215, 195])
    ramp = np.linspace(0, 1, ground, dtype=np.float32)[:, None]
    img[:ground] = (sky_top + (sky_low - sky_top) * ramp).astype(np.uint8)[:, None, :]
    x = -float(rng.uniform(0, 60))
    while x < img.shape[1]:
        bw = float(rng.uniform(0.08, 0.22)) * g.width
        top = round(float(rng.uniform(0.0, 0.6)) * (ground - SHAKE_MARGIN_PX)) + 8
        colour = jitter(rng, pick(rng, _FACADES), 10)
        x0, x1 = round(x), round(x + bw) - 2
        cv2.rectangle(img, (x0, top), (x1, ground), colour, -1)
        cell = max(6, round(float(rng.uniform(0.028, 0.04)) * g.height))
        shop, pane = max(4, round(cell * 1.4)), (cell // 2, cell * 3 // 5)
        for wy in range(top + cell // 2, ground - shop - cell, cell):
            for wx in range(x0 + cell // 3, x1 - cell // 2, cell):
                corner = (wx + pane[0], wy + pane[1])
                cv2.rectangle(img, (wx, wy), corner, shaded(colour, 0.45), -1)
                if rng.random() < 0.3:
                    cv2.rectangle(lights, (wx, wy), corner, (90, 190, 240), -1)
        cv2.rectangle(img, (x0, ground - shop), (x1, ground), shaded(colour, 0.5), -1)
        sign_top = ground - shop - max(2, shop // 3)
        cv2.rectangle(img, (x0 + 3, sign_top), (x1 - 3, ground - shop), pick(rng, BRIGHT), -1)
        for sx in range(x0 + 6, x1 - 2 * shop, 2 * shop):
            cv2.rectangle(
                lights, (sx, ground - shop + 3), (sx + shop, ground - 3), (50, 120, 170), -1
            )
        x += bw
    img[ground : g.row(g.layout.far_curb_z_m)] = (165, 168, 170)


def _draw_road(img: Image, g: _Ground, rng: np.random.Generator) -> None:
    """Asphalt with grain and patches, the centre and lane lines, and the curb lane's marks:
    a yellow no-parking line, then parking bays from ``parking_bays_from_x`` on."""
    layout, width = g.layout, img.shape[1]
    top, bottom = g.row(layout.far_curb_z_m), g.row(layout.curb_z_m)
    grain = rng.normal(0, 5, (bottom - top, width, 1)).astype(np.float32)
    patches = cv2.resize(rng.normal(0, 6, (6, 24)).astype(np.float32), (width, bottom - top))
    asphalt = np.array([88, 88, 92], np.float32) + grain + patches[:, :, None]
    img[top:bottom] = np.clip(asphalt, 0, 255).astype(np.uint8)
    thick = max(1, round(0.04 * layout.px_per_m(layout.centre_z_m, g.height)))
    centre = g.row(layout.centre_z_m)
    cv2.line(img, (0, centre), (width, centre), (40, 200, 230), thick, cv2.LINE_AA)
    lane = g.row(layout.lane_z_m)
    for k in range(-40, 40):
        xa, xb = g.col(k * 6.0, layout.lane_z_m), g.col(k * 6.0 + 3.0, layout.lane_z_m)
        cv2.line(img, (round(xa), lane), (round(xb), lane), (225, 225, 225), thick, cv2.LINE_AA)
    bays = round(layout.parking_bays_from_x * g.width) + SHAKE_MARGIN_PX
    yellow = g.row(layout.curb_z_m + 0.25)
    cv2.line(img, (0, yellow), (bays, yellow), (30, 190, 230), max(1, g.height // 300), cv2.LINE_AA)
    for k in range(-30, 30):
        if g.col(k * 5.5, layout.lane_z_m + 1.3) >= bays:
            far = (round(g.col(k * 5.5, layout.lane_z_m)), lane)
            near = (round(g.col(k * 5.5, layout.curb_z_m)), bottom)
            cv2.line(img, far, near, (215, 215, 215), max(1, g.height // 360), cv2.LINE_AA)


def _draw_sidewalk(img: Image, g: _Ground, rng: np.random.Generator) -> None:
    """The curb stone and the near sidewalk: paving in perspective and a tactile strip."""
    layout, (height, width) = g.layout, img.shape[:2]
    curb, near = g.row(layout.curb_z_m), g.row(layout.curb_z_m - 0.22)
    edge_px = max(1, g.height // 240)
    img[curb:near] = (180, 182, 185)
    img[near : near + edge_px] = (120, 120, 125)
    paving = pick(rng, ((150, 160, 170), (120, 130, 165), (165, 165, 160)))
    walk = np.asarray(paving, np.float32) + rng.normal(0, 4, (height - near - edge_px, width, 1))
    img[near + edge_px :] = np.clip(walk, 0, 255).astype(np.uint8)
    img[g.row(layout.curb_z_m - 1.0) : g.row(layout.curb_z_m - 1.35)] = (40, 170, 200)
    joint = shaded(paving, 0.8)
    z = layout.curb_z_m - 0.22
    while z > layout.near_z_m - 1.5:
        cv2.line(img, (0, g.row(z)), (width, g.row(z)), joint, 1)
        z -= 0.5
    horizon = layout.horizon_y * g.height + SHAKE_MARGIN_PX
    centre = g.width / 2 + SHAKE_MARGIN_PX
    for k in range(-60, 61):  # joints across the street run to the vanishing point
        xa = g.col(k * 0.5, layout.curb_z_m - 0.22)
        xb = centre + (xa - centre) * (height - horizon) / (near - horizon)
        cv2.line(img, (round(xa), near), (round(xb), height), joint, 1)


def _draw_far_sidewalk(img: Image, lights: Image, g: _Ground, rng: np.random.Generator) -> None:
    """Lamp posts (lit at night) and trees along the far sidewalk."""
    z = g.layout.far_curb_z_m + 0.5
    s = g.layout.px_per_m(z, g.height)
    for k in range(-6, 7):
        x = g.col(k * 12.0 + float(rng.uniform(-1, 1)), z)
        if not -20 < x < img.shape[1] + 20:
            continue
        pen = Pen(img, x, g.row(z), s)
        if k % 2:
            pen.line((0, 0), (0, 6.5), (60, 60, 65), 0.15)
            head = pen.at(0.5, 6.5)
            cv2.ellipse(img, head, (pen.size(0.5), pen.size(0.15)), 0, 0, 360, (70, 70, 75), -1)
            cv2.circle(lights, head, max(2, pen.size(0.9)), (150, 220, 255), -1)
        else:
            pen.line((0, 0), (0, 2.5), (40, 60, 80), 0.25)
            for _ in range(6):
                leaf_x, leaf_y = float(rng.uniform(-1.3, 1.3)), float(rng.uniform(2.8, 4.5))
                pen.circle(
                    leaf_x, leaf_y, float(rng.uniform(0.8, 1.3)), jitter(rng, (50, 110, 60), 15)
                )
