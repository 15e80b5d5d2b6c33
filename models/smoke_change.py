"""Weak smoke boxes kept only where the scene moves like smoke.

A detector scores a plume low while it is young, thin or dark; lowering its floor for smoke
also lets through what it half takes for smoke and that stays put (a grey umbrella, a
stall's awning). Smoke moves: it turns the place it covers grey against what was there.
So boxes scored between ``detector.corroborated_smoke`` and smoke's floor are kept only
when at least ``classical_smoke.min_change_fraction`` of the box differs from a running
background and is unsaturated. That is the cheap part of the classical detector (its motion
and colour cues at half its working width, ~0.2 ms a 1280×720 frame), without its texture
and persistence tests: here the model has already said "smoke", the cue only has to say
"and it moves".

Stateful over one camera's frames: one :class:`SmokeCorroboration` per camera, wrapping the
detector the cameras may share.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from citywatch.config.detector import SMOKE_CLASS, DetectorConfig, SmokeOpinionConfig
from citywatch.models.detections import Detections, Detector, Image
from citywatch.models.smoke_classical import learn_background, scale_to_width, share_of_box

__all__ = ["GreyChange", "SmokeCorroboration", "corroborated"]


class GreyChange:
    """A running background of a camera's scaled-down grey frames, and where the last
    frame turned grey against it."""

    def __init__(self, config: SmokeOpinionConfig) -> None:
        self.config = config
        self._background: NDArray[np.float32] | None = None
        self._grey_change: NDArray[np.bool_] | None = None
        self._scale = 1.0

    def update(self, image: Image) -> None:
        """Feed the next frame. Still pixels teach the background quickly, changed ones
        slowly, so a lasting plume is not learnt away before it is judged."""
        cfg = self.config
        # A camera pays this every frame, and a coarse change mask is all it needs: half the
        # classical detector's working width, bilinear.
        width = max(cfg.work_width_px // 2, 64)
        small, self._scale = scale_to_width(image, width, cv2.INTER_LINEAR)
        gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32)
        if self._background is None or self._background.shape != gray.shape:
            self._background = gray
            self._grey_change = np.zeros(gray.shape, np.bool_)
            return
        moving = np.abs(gray - self._background) > cfg.diff_threshold
        saturation = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)[:, :, 1]
        self._grey_change = moving & (saturation <= cfg.max_saturation)
        learn_background(self._background, gray, moving, cfg)

    def cover(self, box: NDArray[np.float32] | tuple[float, float, float, float]) -> float:
        """Share of ``box`` (xyxy, source pixels) that turned grey in the last frame fed."""
        if self._grey_change is None:
            return 0.0
        return share_of_box(self._grey_change, self._scale, box)


class SmokeCorroboration:
    """One camera's view of a (shared) detector: smoke boxes at or under smoke's floor are
    kept only where :class:`GreyChange` sees enough grey change."""

    def __init__(self, detector: Detector, config: DetectorConfig) -> None:
        self.detector = detector
        self.sure = config.floor(SMOKE_CLASS)
        self.change = GreyChange(config.classical_smoke)
        self.min_cover = config.classical_smoke.min_change_fraction

    @property
    def classes(self) -> tuple[str, ...]:
        return self.detector.classes

    def detect(self, image: Image) -> Detections:
        found = self.detector.detect(image)
        self.change.update(image)
        is_smoke = np.array([n.lower() == SMOKE_CLASS for n in found.class_name], np.bool_)
        weak = is_smoke & (found.confidence <= np.float32(self.sure))  # as the backends compare
        if not weak.any():
            return found
        keep = ~weak
        for i in np.flatnonzero(weak):
            keep[i] = self.change.cover(found.xyxy[i]) >= self.min_cover
        return found.where(keep)


def corroborated(detector: Detector, config: DetectorConfig) -> Detector:
    """``detector`` as one camera with ``config`` uses it: wrapped when weak smoke boxes
    need corroborating, as it is otherwise."""
    if config.corroborated_smoke is None:
        return detector
    return SmokeCorroboration(detector, config)
