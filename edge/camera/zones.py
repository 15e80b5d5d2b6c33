"""A camera's zones compiled for one frame size: which zone each box is in, and which are masked.

A box belongs to a zone when its anchor point (bottom centre by default: where a vehicle or
a stall touches the ground) lies inside or on the zone's polygon. Points are tested all at
once with shapely's vectorised ``intersects_xy`` on prepared polygons.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray

from citywatch.config.camera import Anchor, Zone
from citywatch.models.detections import Detections

__all__ = [
    "CompiledZone",
    "ZoneError",
    "ZoneMap",
    "anchor_points",
    "area_fractions",
    "drop_masked",
]

MASK_ANCHOR: Anchor = "bottom_center"
"""The point that decides whether a detection is hidden by a mask (as Frigate's object masks)."""

_ANCHOR_WEIGHTS: dict[Anchor, tuple[float, float]] = {
    # (share of the way from x1 to x2, share of the way from y1 to y2)
    "bottom_center": (0.5, 1.0),
    "center": (0.5, 0.5),
    "top_center": (0.5, 0.0),
    "bottom_left": (0.0, 1.0),
    "bottom_right": (1.0, 1.0),
    "top_left": (0.0, 0.0),
    "top_right": (1.0, 0.0),
    "center_left": (0.0, 0.5),
    "center_right": (1.0, 0.5),
}


class ZoneError(ValueError):
    """A zone cannot be used on this camera's frames (outside the frame, or not a polygon)."""


def anchor_points(xyxy: NDArray[np.floating], anchor: Anchor) -> NDArray[np.float64]:
    """The ``anchor`` point of every box, as an (N, 2) array in the boxes' coordinates."""
    boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    wx, wy = _ANCHOR_WEIGHTS[anchor]
    x = boxes[:, 0] + wx * (boxes[:, 2] - boxes[:, 0])
    y = boxes[:, 1] + wy * (boxes[:, 3] - boxes[:, 1])
    return np.stack([x, y], axis=1)


def area_fractions(xyxy: NDArray[np.floating], frame_w: int, frame_h: int) -> NDArray[np.float64]:
    """The area of every box as a fraction of the image."""
    boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / float(frame_w * frame_h)


@dataclass(frozen=True)
class CompiledZone:
    """One zone in pixels of the frame it was compiled for, ready for point tests."""

    name: str
    mask: bool
    polygon_px: tuple[tuple[float, float], ...]
    geometry: shapely.Polygon

    def contains(self, points: NDArray[np.floating]) -> NDArray[np.bool_]:
        """Which of the (N, 2) pixel ``points`` lie inside the zone or on its edge."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        if not len(pts):
            return np.zeros(0, dtype=bool)
        return np.asarray(shapely.intersects_xy(self.geometry, pts[:, 0], pts[:, 1]), dtype=bool)


class ZoneMap:
    """A camera's zones for one frame size; build a new one when the resolution changes."""

    def __init__(self, zones: Sequence[Zone], frame_w: int, frame_h: int) -> None:
        if frame_w <= 0 or frame_h <= 0:
            raise ZoneError(f"frame size must be positive, got {frame_w}x{frame_h}")
        self.frame_w = frame_w
        self.frame_h = frame_h
        self.zones: dict[str, CompiledZone] = {
            zone.name: _compile(zone, frame_w, frame_h) for zone in zones
        }
        self.masks: tuple[CompiledZone, ...] = tuple(z for z in self.zones.values() if z.mask)

    def contains(self, zone: str, points: NDArray[np.floating]) -> NDArray[np.bool_]:
        """Which of the (N, 2) pixel ``points`` lie in ``zone``."""
        return self.zones[zone].contains(points)

    def first_zone(self, point: tuple[float, float], candidates: Sequence[str]) -> str | None:
        """The first of ``candidates`` (in their order) that contains ``point``, if any."""
        pts = np.array([point], dtype=np.float64)
        for name in candidates:
            if bool(self.zones[name].contains(pts)[0]):
                return name
        return None

    def masked(self, points: NDArray[np.floating]) -> NDArray[np.bool_]:
        """Which of the (N, 2) pixel ``points`` lie in any mask."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        hidden = np.zeros(len(pts), dtype=bool)
        for mask in self.masks:
            hidden |= mask.contains(pts)
        return hidden

    def membership(self, points: NDArray[np.floating]) -> dict[str, NDArray[np.bool_]]:
        """For every watched (non-mask) zone, which of the ``points`` lie in it."""
        return {name: z.contains(points) for name, z in self.zones.items() if not z.mask}

    def normalize(self, point: tuple[float, float]) -> tuple[float, float]:
        """A pixel point as 0–1 of the frame."""
        return (point[0] / self.frame_w, point[1] / self.frame_h)


def drop_masked(detections: Detections, zones: ZoneMap) -> Detections:
    """``detections`` without those whose bottom centre lies in a mask."""
    if not zones.masks or not len(detections):
        return detections
    keep = ~zones.masked(anchor_points(detections.xyxy, MASK_ANCHOR))
    if keep.all():
        return detections
    return Detections(
        detections.xyxy[keep],
        detections.confidence[keep],
        tuple(name for name, k in zip(detections.class_name, keep.tolist(), strict=True) if k),
    )


def _compile(zone: Zone, frame_w: int, frame_h: int) -> CompiledZone:
    if zone.units == "normalized":
        vertices = tuple((x * frame_w, y * frame_h) for x, y in zone.polygon)
    else:
        outside = [(x, y) for x, y in zone.polygon if x > frame_w or y > frame_h]
        if outside:
            raise ZoneError(
                f"pixel zone {zone.name!r} has vertices {outside} outside the {frame_w}x{frame_h}"
                " frame: the camera's resolution changed; redraw the zone or use units: normalized"
            )
        vertices = tuple((float(x), float(y)) for x, y in zone.polygon)
    geometry = shapely.Polygon(vertices)
    if not geometry.is_valid:
        raise ZoneError(
            f"zone {zone.name!r} is not a simple polygon ({shapely.is_valid_reason(geometry)});"
            " list its vertices in order around the edge without crossings"
        )
    shapely.prepare(geometry)
    return CompiledZone(zone.name, zone.mask, vertices, geometry)
