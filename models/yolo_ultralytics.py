"""The ultralytics backend: any weights ultralytics loads (.pt, .onnx, an OpenVINO folder).

Never a download: the weights path is checked before ultralytics is imported, and
ultralytics is imported offline with auto-install off, so a missing file or package is an
error here rather than a silent fetch from the internet at a street cabinet.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from citywatch.models.detections import Detections, Image
from citywatch.models.detector_factory import (
    BackendUnavailable,
    MappedClassesMixin,
    ModelClasses,
    ModelFormatError,
    check_weights,
)

__all__ = ["UltralyticsDetector"]


def _import_yolo() -> Any:
    # Read by ultralytics when first imported: no network checks, no pip installs.
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    try:
        from ultralytics import YOLO
    except ImportError as exc:
        raise BackendUnavailable(
            f"detector.backend 'ultralytics' needs ultralytics and torch ({exc}); install"
            " `citywatch[vision]` or use backend 'onnx'"
        ) from exc
    return YOLO


class UltralyticsDetector(MappedClassesMixin):
    """A YOLO detection model run by ultralytics on the CPU."""

    def __init__(
        self,
        weights: Path,
        *,
        imgsz: int = 640,
        confidence: float = 0.25,
        class_confidence: Mapping[str, float] | None = None,
        iou: float = 0.5,
        class_map: Mapping[str, str] | None = None,
        device: str = "cpu",
        config_key: str = "detector.weights",
    ) -> None:
        self.weights = check_weights(Path(weights), config_key)
        yolo = _import_yolo()
        try:
            self._model = yolo(str(self.weights), task="detect")
        except Exception as exc:  # ultralytics raises bare Exception/RuntimeError subclasses
            raise ModelFormatError(
                f"ultralytics cannot load {self.weights} ({type(exc).__name__}: {exc});"
                " check that the file is a complete YOLO detection model"
            ) from exc
        if getattr(self._model, "task", "detect") != "detect":
            raise ModelFormatError(
                f"{self.weights} is a {self._model.task!r} model; citywatch needs a 'detect' model"
            )
        self._mapping = ModelClasses.build(
            self._model.names, class_map or {}, source=str(self.weights)
        )
        self.imgsz = imgsz
        self._set_floors(confidence, class_confidence)
        self.iou = iou
        self.device = device

    def detect(self, image: Image) -> Detections:
        result = self._model.predict(
            image,
            imgsz=self.imgsz,
            conf=self.model_confidence,
            iou=self.iou,
            device=self.device,
            rect=False,  # pad to the full square, as a fixed-size ONNX export must
            verbose=False,
        )[0]
        boxes = result.boxes
        if boxes is None or len(boxes) == 0:
            return Detections.empty()
        xyxy = boxes.xyxy.cpu().numpy().astype(np.float32)
        confidence = np.clip(boxes.conf.cpu().numpy().astype(np.float32), 0.0, 1.0)
        names = tuple(self._mapping.names[int(c)] for c in boxes.cls.cpu().numpy())
        return self._finish(Detections(xyxy, confidence, names))
