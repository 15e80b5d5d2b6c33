"""The ultralytics backend: any weights ultralytics loads (.pt, .onnx, an OpenVINO folder).

Never a download: the weights path is checked before ultralytics is imported, and
ultralytics is imported offline with auto-install off, so a missing file or package is an
error here rather than a silent fetch from the internet at a street cabinet.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import numpy as np

from citywatch.models.detections import Image
from citywatch.models.detector_factory import (
    BackendUnavailable,
    ModelClasses,
    ModelFormatError,
    RawBoxes,
    check_weights,
)

__all__ = ["UltralyticsModel"]


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


class UltralyticsModel:
    """A YOLO detection model run by ultralytics on the CPU, frame-shaped (``rect=True``)
    unless ``input_shape='square'`` or the weights are a fixed-size export."""

    def __init__(
        self,
        weights: Path,
        *,
        imgsz: int = 640,
        input_shape: Literal["frame", "square"] = "frame",
        device: str = "cpu",
        config_key: str = "detector.weights",
    ) -> None:
        self.weights = check_weights(Path(weights), config_key)
        if self.weights.suffix.lower() in {".yaml", ".yml"}:
            raise ModelFormatError(
                f"{self.weights} is a model definition, not trained weights: ultralytics would"
                " build an untrained model from it; give the trained .pt or its .onnx export"
            )
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
        names = ModelClasses.build(self._model.names, {}, source=str(self.weights))
        self._names = names.model_names
        self.imgsz = imgsz
        self.rect = input_shape == "frame"
        self.device = device

    @property
    def model_names(self) -> tuple[str, ...]:
        return self._names

    def infer(self, image: Image, confidence: float, iou: float) -> RawBoxes:
        result = self._model.predict(
            image,
            imgsz=self.imgsz,
            conf=confidence,
            iou=iou,
            device=self.device,
            rect=self.rect,  # ultralytics pads a fixed-size export to its square regardless
            verbose=False,
        )[0]
        boxes = result.boxes
        if boxes is None or len(boxes) == 0:
            return RawBoxes.empty()
        return RawBoxes(
            boxes.xyxy.cpu().numpy().astype(np.float32),
            boxes.conf.cpu().numpy().astype(np.float32),
            boxes.cls.cpu().numpy().astype(np.intp),
        )
