"""A classical smoke detector that needs no weights: motion, colour, texture and persistence.

Smoke is a grey-white veil that appears where the background was and stays there. Each
cue alone fires on something else, together they rarely do:

* motion: the pixel differs from a running-average background (static scenes never fire);
* colour: low saturation, mid-to-high brightness (grey-white, not a red bus);
* texture: a veil dims the background's edges without erasing them, so the local gradient
  energy falls to a fraction of the background's; a solid object (a grey car) erases them
  (ratio near 0) or adds its own sharp outline (ratio near or above 1);
* persistence: a pixel must pass for several frames in a row, and its blob must stay in
  place meanwhile (a plume grows from its source; a car travels);
* outline: a veil fades out, a solid object ends in a sharp edge the background lacks.

Stateful over one camera's frames, so one instance per camera. Use it alone
(:meth:`ClassicalSmokeDetector.detect`) or as a second opinion on another detector's smoke
boxes (:meth:`ClassicalSmokeDetector.opinion`). Dark smoke (burning rubbish, tyres) is a
veil that darkens instead: with ``dark_smoke`` the colour cue also takes a low-saturation
pixel darker than the background, whatever its brightness (off by default: a shadow that
stays put looks the same to these cues).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from citywatch.config.detector import SMOKE_CLASS, SmokeOpinionConfig
from citywatch.models.detections import Detections, Image

__all__ = [
    "SMOKE",
    "ClassicalSmokeDetector",
    "learn_background",
    "scale_to_width",
    "share_of_box",
]

SMOKE = SMOKE_CLASS
_TEXTURE_WINDOW_PX = 9
_KERNEL = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
_RING_KERNEL = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))

FloatImage = NDArray[np.float32]
Mask = NDArray[np.bool_]


class ClassicalSmokeDetector:
    """Grey-white, semi-transparent, lasting change against a learned background."""

    def __init__(self, config: SmokeOpinionConfig | None = None) -> None:
        self.config = config or SmokeOpinionConfig()
        self._shape: tuple[int, int] | None = None
        self._background: FloatImage | None = None
        self._streak: NDArray[np.int16] | None = None
        self._blobs: deque[_Blobs] = deque(maxlen=self.config.drift_window_frames)
        self._smoke: Mask | None = None
        self._new_edges: FloatImage | None = None
        self._scale = 1.0

    @property
    def classes(self) -> tuple[str, ...]:
        return (SMOKE,)

    def reset(self) -> None:
        """Forget the background, e.g. after the camera moved or reconnected."""
        self._shape = None
        self._background = None
        self._streak = None
        self._blobs.clear()
        self._smoke = None
        self._new_edges = None

    def detect(self, image: Image) -> Detections:
        """Feed the next frame; smoke regions that have lasted ``persistence_frames``."""
        smoke = self._update(image)
        return self._regions(smoke)

    def opinion(self, image: Image, boxes: Detections) -> NDArray[np.bool_]:
        """Feed the next frame; for each of another detector's boxes, whether it looks like smoke.

        A box is confirmed when at least ``min_box_fraction`` of it is lasting smoke-like
        change. Call once per frame instead of :meth:`detect`, not as well.
        """
        self._update(image)
        return np.array([self.confirms(box) for box in boxes.xyxy], dtype=np.bool_)

    def confirms(self, box: NDArray[np.float32] | tuple[float, float, float, float]) -> bool:
        """Whether the last frame fed shows lasting smoke over ``box`` (xyxy source pixels)."""
        if self._smoke is None:
            return False
        return share_of_box(self._smoke, self._scale, box) >= self.config.min_box_fraction

    def _update(self, image: Image) -> Mask:
        """Advance the model by one frame and return the lasting-smoke mask (working size)."""
        cfg = self.config
        small = self._resize(image)
        gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32)
        if self._background is None or self._shape != gray.shape:
            self._shape = (int(gray.shape[0]), int(gray.shape[1]))
            self._background = gray
            self._streak = np.zeros(gray.shape, np.int16)
            self._blobs.clear()
            self._smoke = np.zeros(gray.shape, np.bool_)
            return self._smoke
        assert self._streak is not None

        moving = np.abs(gray - self._background) > cfg.diff_threshold
        moving = cv2.morphologyEx(moving.astype(np.uint8), cv2.MORPH_OPEN, _KERNEL).astype(bool)

        hsv = cv2.cvtColor(cv2.GaussianBlur(small, (5, 5), 0), cv2.COLOR_BGR2HSV)
        bright = hsv[:, :, 2] >= cfg.min_brightness
        if cfg.dark_smoke:
            bright |= gray < self._background - cfg.diff_threshold
        greyish = (hsv[:, :, 1] <= cfg.max_saturation) & bright

        texture_ok = self._veil(gray)
        candidate = moving & greyish & texture_ok
        streak = np.where(candidate, self._streak + 1, 0)
        self._streak = np.minimum(streak, 2 * cfg.persistence_frames).astype(np.int16)
        self._blobs.append(_Blobs.of(candidate))
        lasting = np.asarray(
            cv2.morphologyEx(
                (self._streak >= cfg.persistence_frames).astype(np.uint8), cv2.MORPH_CLOSE, _KERNEL
            ),
            np.uint8,
        )
        self._smoke = self._anchored(lasting)

        learn_background(self._background, gray, moving, cfg)
        return self._smoke

    def _anchored(self, lasting: NDArray[np.uint8]) -> Mask:
        """Keep the lasting regions whose blob stayed in place over the drift window.

        A plume grows from its source; a slow grey car keeps each of its pixels covered for
        a few frames too, but its blob travels. Drift is measured in blob sizes, from the
        earliest frame in the window where a blob covered the region.
        """
        count, labels = cv2.connectedComponents(lasting, connectivity=8)
        smoke = np.zeros(lasting.shape, np.bool_)
        for label in range(1, count):
            region = labels == label
            newest = self._blobs[-1]
            now = newest.blob_over(region)
            # The earliest frame in the window where a blob already covered this place.
            earlier = (blobs.blob_over(region) for blobs in self._blobs)
            then = next((blob for blob in earlier if blob is not None), None)
            if now is None or then is None:
                continue
            drift = float(np.hypot(now.x - then.x, now.y - then.y)) / max(np.sqrt(now.area), 1.0)
            if drift <= self.config.max_drift and not self._sharp_outline(
                newest.labels == now.label
            ):
                smoke |= region
        return smoke

    def _sharp_outline(self, blob: Mask) -> bool:
        """Whether a blob ends in edges the background lacks: a solid object, not a veil."""
        if self._new_edges is None:
            return False
        ring = cv2.dilate(blob.astype(np.uint8), _RING_KERNEL).astype(bool) & ~blob
        if not ring.any():
            return False
        return float(self._new_edges[ring].mean()) > self.config.max_outline_sharpness

    def _veil(self, gray: FloatImage) -> Mask:
        """Where the frame's local structure is the background's, dimmed but not erased.

        Where the background is flat there is nothing to veil; there a place passes unless
        it shows new edges (a solid object's outline).
        """
        cfg = self.config
        assert self._background is not None
        fx, fy = _gradients(gray)
        bx, by = _gradients(self._background)
        frame_energy = _local_mean(fx * fx + fy * fy)
        background_energy = _local_mean(bx * bx + by * by)
        cross = _local_mean(fx * bx + fy * by)
        # A box filter's running sums can leave a flat patch's energy a hair below zero.
        frame_rms = np.sqrt(np.maximum(frame_energy, 0))
        background_rms = np.sqrt(np.maximum(background_energy, 0))
        ratio = frame_rms / np.maximum(background_rms, 1e-3)
        correlation = cross / np.maximum(frame_rms * background_rms, 1e-3)
        veiled = (
            (ratio >= cfg.min_texture_ratio)
            & (ratio <= cfg.max_texture_ratio)
            & (correlation >= cfg.min_structure_correlation)
        )
        self._new_edges = np.clip(frame_rms - background_rms, 0, None)
        no_new_edges = frame_rms < cfg.min_background_texture
        return np.where(background_rms >= cfg.min_background_texture, veiled, no_new_edges)

    def _regions(self, smoke: Mask) -> Detections:
        count, labels, stats, _ = cv2.connectedComponentsWithStats(
            smoke.astype(np.uint8), connectivity=8
        )
        min_area = self.config.min_area_fraction * smoke.size
        assert self._streak is not None
        boxes: list[list[float]] = []
        scores: list[float] = []
        for label in range(1, count):
            x, y, w, h, area = (int(v) for v in stats[label])
            if area < min_area:
                continue
            region = labels[y : y + h, x : x + w] == label
            streak = self._streak[y : y + h, x : x + w][region]
            # Longer-lasting and more solidly filled regions score higher.
            lasting = float(np.clip(streak.mean() / (2 * self.config.persistence_frames), 0, 1))
            fill = area / float(w * h)
            scores.append(float(np.clip(0.3 + 0.4 * lasting + 0.3 * fill, 0.0, 1.0)))
            boxes.append(
                [x / self._scale, y / self._scale, (x + w) / self._scale, (y + h) / self._scale]
            )
        if not boxes:
            return Detections.empty()
        return Detections(
            np.array(boxes, np.float32), np.array(scores, np.float32), (SMOKE,) * len(boxes)
        )

    def _resize(self, image: Image) -> Image:
        small, self._scale = scale_to_width(image, self.config.work_width_px)
        return small


def learn_background(
    background: FloatImage, gray: FloatImage, moving: Mask, config: SmokeOpinionConfig
) -> None:
    """Blend ``gray`` into ``background`` in place. Still pixels teach it quickly, changed
    ones (smoke too) slowly, so a plume is not absorbed before it has been judged."""
    alpha = np.where(moving, config.foreground_alpha, config.background_alpha)
    background += alpha.astype(np.float32) * (gray - background)


def share_of_box(
    mask: Mask, scale: float, box: NDArray[np.float32] | tuple[float, float, float, float]
) -> float:
    """Share of ``box`` (xyxy, source pixels) that ``mask`` (working size, ``scale`` of the
    source) covers; 0 for a box outside it."""
    h, w = mask.shape
    x1, y1, x2, y2 = (float(v) * scale for v in box)
    c1, r1 = int(np.clip(np.floor(x1), 0, w)), int(np.clip(np.floor(y1), 0, h))
    c2, r2 = int(np.clip(np.ceil(x2), 0, w)), int(np.clip(np.ceil(y2), 0, h))
    if c2 <= c1 or r2 <= r1:
        return 0.0
    return float(mask[r1:r2, c1:c2].mean())


def scale_to_width(
    image: Image, width_px: int, interpolation: int = cv2.INTER_AREA
) -> tuple[Image, float]:
    """``image`` shrunk to at most ``width_px`` wide, and the scale used. Area averaging by
    default; bilinear costs a quarter of it on a 1280-pixel frame (0.25 ms against 1 ms)."""
    width = image.shape[1]
    scale = min(1.0, width_px / width)
    if scale >= 1.0:
        return image, 1.0
    size = (round(width * scale), round(image.shape[0] * scale))
    return np.asarray(cv2.resize(image, size, interpolation=interpolation), np.uint8), scale


@dataclass(frozen=True)
class _Blobs:
    """One frame's smoke-candidate blobs: a label image and each blob's centroid and area."""

    labels: NDArray[np.int32]
    centroids: NDArray[np.float64]
    areas: NDArray[np.int32]

    @classmethod
    def of(cls, mask: Mask) -> _Blobs:
        closed = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, _KERNEL)
        _, labels, stats, centroids = cv2.connectedComponentsWithStats(closed, connectivity=8)
        return cls(
            np.asarray(labels, np.int32),
            np.asarray(centroids, np.float64),
            np.asarray(stats[:, cv2.CC_STAT_AREA], np.int32),
        )

    def blob_over(self, region: Mask) -> _Blob | None:
        """The blob covering most of ``region``; None if none covers any of it."""
        hits = np.bincount(self.labels[region], minlength=len(self.areas))
        hits[0] = 0
        if not hits.any():
            return None
        label = int(hits.argmax())
        x, y = self.centroids[label]
        return _Blob(label, float(x), float(y), int(self.areas[label]))


@dataclass(frozen=True, slots=True)
class _Blob:
    label: int
    x: float
    y: float
    area: int


def _gradients(gray: FloatImage) -> tuple[FloatImage, FloatImage]:
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    return np.asarray(gx, np.float32), np.asarray(gy, np.float32)


def _local_mean(values: FloatImage) -> FloatImage:
    window = (_TEXTURE_WINDOW_PX, _TEXTURE_WINDOW_PX)
    return np.asarray(cv2.blur(values, window), dtype=np.float32)
