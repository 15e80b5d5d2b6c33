"""Drawing on evidence: the zones, the box and its label on an alert's snapshot.

cv2 draws only ASCII, so names and labels are drawn with ``?`` for anything else.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from citywatch.config.camera import Zone
from citywatch.edge.camera.evidence import Box
from citywatch.models.detections import Image

__all__ = ["ZoneOverlay", "annotate", "evidence_label", "zone_overlays"]


@dataclass(frozen=True)
class ZoneOverlay:
    """A zone as drawn: its polygon in pixels, its name, and whether it is a mask."""

    name: str
    polygon_px: NDArray[np.int32]
    mask: bool = False


def zone_overlays(zones: Iterable[Zone], width: int, height: int) -> list[ZoneOverlay]:
    """Config zones as pixel polygons of a ``width``×``height`` image (normalized zones are
    scaled, pixel zones taken as they are)."""
    scale = np.array([width, height], np.float64)
    overlays = []
    for zone in zones:
        points = np.array(zone.polygon, np.float64)
        if zone.units == "normalized":
            points = points * scale
        overlays.append(ZoneOverlay(zone.name, np.round(points).astype(np.int32), zone.mask))
    return overlays


def evidence_label(class_name: str, confidence: float, dwell_s: float | None = None) -> str:
    """``car 0.87 dwell 192s``: the label drawn on a snapshot."""
    dwell = f" dwell {dwell_s:.0f}s" if dwell_s is not None else ""
    return f"{class_name} {confidence:.2f}{dwell}"


_WATCHED = (0, 200, 255)  # BGR amber
_MASKED = (140, 140, 140)
_BOX = (0, 0, 255)
_TEXT = (255, 255, 255)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_ZONE_ALPHA = 0.25


def _ascii(text: str) -> str:
    # cv2.putText draws only ASCII; a CJK class name would come out as "???" boxes anyway.
    return text.encode("ascii", "replace").decode("ascii")


def _text_box(
    image: Image, text: str, x: int, y: int, scale: float, color: tuple[int, ...]
) -> None:
    """Draw ``text`` on a filled ``color`` box whose top-left corner is at (x, y)."""
    thickness = max(1, round(scale * 2))
    (w, h), base = cv2.getTextSize(text, _FONT, scale, thickness)
    pad = max(2, round(h * 0.3))
    height, width = image.shape[:2]
    x = int(min(max(x, 0), max(width - w - 2 * pad, 0)))
    y = int(min(max(y, 0), max(height - h - base - 2 * pad, 0)))
    cv2.rectangle(image, (x, y), (x + w + 2 * pad, y + h + base + 2 * pad), color, cv2.FILLED)
    cv2.putText(image, text, (x + pad, y + pad + h), _FONT, scale, _TEXT, thickness, cv2.LINE_AA)


def annotate(image: Image, zones: Sequence[ZoneOverlay], box: Box | None, label: str = "") -> Image:
    """A copy of ``image`` with the zones (translucent fill, outline, name), the box and
    its label. Non-ASCII characters in names and label are drawn as ``?``."""
    out = image.copy()
    height, width = out.shape[:2]
    scale = max(0.45, min(width, height) / 900)
    line = max(2, round(min(width, height) / 300))
    if zones:
        fill = out.copy()
        for zone in zones:
            cv2.fillPoly(fill, [zone.polygon_px], _MASKED if zone.mask else _WATCHED)
        cv2.addWeighted(fill, _ZONE_ALPHA, out, 1 - _ZONE_ALPHA, 0, dst=out)
        for zone in zones:
            color = _MASKED if zone.mask else _WATCHED
            cv2.polylines(out, [zone.polygon_px], True, color, line, cv2.LINE_AA)
            top = zone.polygon_px[np.argmin(zone.polygon_px[:, 1])]
            name = _ascii(zone.name) + (" (mask)" if zone.mask else "")
            _text_box(out, name, int(top[0]), int(top[1]), scale * 0.8, color)
    if box is not None:
        x1, y1, x2, y2 = (round(float(v)) for v in box)
        cv2.rectangle(out, (x1, y1), (x2, y2), _BOX, line)
        if label:
            text = _ascii(label)
            (_, text_h), base = cv2.getTextSize(text, _FONT, scale, max(1, round(scale * 2)))
            above = y1 - text_h - base - 2 * max(2, round(text_h * 0.3))
            _text_box(out, text, x1, above if above >= 0 else y1, scale, _BOX)
    return out
