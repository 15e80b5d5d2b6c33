"""A weight-free detector for nadir aerial photos: colour and shape cues, no model file.

Good enough for the synthetic aerial scenes (:mod:`citywatch.hardware.dock.aerial`), so the dock
path runs end to end without the trained YOLO model. It looks for two things:

- **saturated, non-green blobs** (vehicle paint, umbrella fabric on grass and asphalt),
  classified by the shape of their minimum-area rectangle: a disc (aspect ≈ 1, fill ≈ π/4)
  is a ``stall`` umbrella, a filled rectangle of aspect 1.6–3 a ``car``, longer a ``truck``;
  blobs cut by the image border are skipped (wrong shape, wrong centre; photos overlap);
- **large, bright, unsaturated regions** (smoke whitening whatever lies below), after an
  opening that removes thin lane markings: ``smoke``.

It will not survive real photos (white cars look like smoke, shadows and roofs confuse it):
real deployments plug a YOLO model in here, behind the same :class:`Detector` interface,
once the camera issue's model (or an operator's own weights) is available.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from citywatch.models.detections import Detection, Detections, Image

__all__ = ["AerialClassicalDetector"]


@dataclass(frozen=True)
class AerialClassicalDetector:
    """Thresholds in pixels and OpenCV HSV units (H 0–180, S and V 0–255)."""

    min_object_area_px: int = 120
    min_smoke_area_px: int = 300
    min_saturation: int = 110
    green_hue: tuple[int, int] = (20, 95)
    smoke_max_saturation: int = 68
    smoke_min_value: int = 125

    @property
    def classes(self) -> tuple[str, ...]:
        return ("car", "truck", "stall", "smoke")

    def detect(self, image: Image) -> Detections:
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an H×W×3 BGR image, got shape {image.shape}")
        hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
        hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]
        rows = self._objects(hue, sat, val) + self._smoke(sat, val)
        return Detections.from_rows(rows)

    def _objects(self, hue: np.ndarray, sat: np.ndarray, val: np.ndarray) -> list[Detection]:
        green = (hue >= self.green_hue[0]) & (hue <= self.green_hue[1])
        raw = ((sat >= self.min_saturation) & (val >= 60) & ~green).astype(np.uint8) * 255
        closed = cv2.morphologyEx(raw, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
        mask = cv2.morphologyEx(closed, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        rows = []
        for contour in contours:
            area = cv2.contourArea(contour)
            if area < self.min_object_area_px:
                continue
            (_, _), (w, h), _ = cv2.minAreaRect(contour)
            long_side, short_side = max(w, h), max(min(w, h), 1.0)
            aspect = long_side / short_side
            fill = area / max(w * h, 1.0)
            name, score = _classify(aspect, fill)
            x, y, bw, bh = cv2.boundingRect(contour)
            if name is None or _touches_border(x, y, bw, bh, mask.shape):
                continue
            rows.append(Detection(float(x), float(y), float(x + bw), float(y + bh), score, name))
        return rows

    def _smoke(self, sat: np.ndarray, val: np.ndarray) -> list[Detection]:
        raw = ((sat <= self.smoke_max_saturation) & (val >= self.smoke_min_value)).astype(
            np.uint8
        ) * 255
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
        opened = cv2.morphologyEx(raw, cv2.MORPH_OPEN, kernel)
        mask = cv2.morphologyEx(opened, cv2.MORPH_CLOSE, kernel)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        rows = []
        for contour in contours:
            area = cv2.contourArea(contour)
            if area < self.min_smoke_area_px:
                continue
            x, y, bw, bh = cv2.boundingRect(contour)
            if _touches_border(x, y, bw, bh, mask.shape):
                continue
            region = sat[y : y + bh, x : x + bw][mask[y : y + bh, x : x + bw] > 0]
            whiteness = 1.0 - float(region.mean()) / max(self.smoke_max_saturation, 1)
            score = float(np.clip(0.55 + 0.45 * whiteness, 0.0, 1.0))
            rows.append(Detection(float(x), float(y), float(x + bw), float(y + bh), score, "smoke"))
        return rows


def _touches_border(x: int, y: int, w: int, h: int, shape: tuple[int, ...]) -> bool:
    """A blob cut by the image edge has the wrong shape and centre: the next photo has it."""
    return x <= 0 or y <= 0 or x + w >= shape[1] or y + h >= shape[0]


def _classify(aspect: float, fill: float) -> tuple[str | None, float]:
    """Class and confidence from the blob's min-area-rectangle aspect and fill."""
    if aspect < 1.35 and 0.65 <= fill <= 0.9:
        return "stall", float(np.clip(1.0 - abs(fill - np.pi / 4) * 3 - (aspect - 1) * 0.5, 0, 1))
    if fill < 0.8:
        return None, 0.0
    if 1.6 <= aspect < 3.0:
        return "car", float(np.clip(0.6 + 0.4 * fill, 0, 1))
    if 3.0 <= aspect < 5.5:
        return "truck", float(np.clip(0.6 + 0.4 * fill, 0, 1))
    return None, 0.0
