"""A camera's detectors: several models on the same frame, their boxes merged before tracking.

A street camera usually needs a COCO model for vehicles and people and a separate fire/smoke
model; running both on one decoded frame saves a second connection and decode. Models are
loaded once per gateway (:class:`ModelPool`, keyed by what makes two loads different) and
shared by every camera and entry naming them; each entry keeps its own class map, floors
and ``classes`` filter (:class:`~citywatch.models.detector_factory.MappedDetector`), may run
only every Nth frame (:class:`EveryNth`), and the classical smoke detector, which learns a
background per camera, is never shared.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from citywatch.config.detector import DetectorConfig
from citywatch.models.detections import Detections, Detector, Image
from citywatch.models.detector_factory import (
    MODELS_DIR,
    RawBoxes,
    YoloModel,
    load_model,
    view,
)
from citywatch.models.smoke_classical import ClassicalSmokeDetector

__all__ = ["EveryNth", "MergedDetectors", "ModelPool", "combine", "merge"]

ModelKey = tuple[str, str, int, str, int | None, bool, str]


def model_key(config: DetectorConfig, models_dir: Path = MODELS_DIR) -> ModelKey:
    """What makes two loads of a model different: weights, backend, input size and shape,
    and the onnxruntime session's threading (entries differing only in map, floors, IoU
    or cadence share one load)."""
    weights = str(config.weights_path(models_dir).resolve())
    return (
        config.backend,
        weights,
        config.imgsz,
        config.input_shape,
        config.threads,
        config.spin_wait,
        config.device,
    )


class LockedModel:
    """One loaded model used by several camera threads (ultralytics is not thread-safe;
    onnxruntime is, but two cameras at once would only fight over the same cores)."""

    def __init__(self, model: YoloModel) -> None:
        self.model = model
        self.weights = model.weights
        self._lock = threading.Lock()

    @property
    def model_names(self) -> tuple[str, ...]:
        return self.model.model_names

    def infer(self, image: Image, confidence: float, iou: float) -> RawBoxes:
        with self._lock:
            return self.model.infer(image, confidence, iou)


class ModelPool:
    """The models a gateway has loaded, one per :func:`model_key`, and one view per entry
    settings (entries with the same settings, on any camera, get the same detector)."""

    def __init__(self, models_dir: Path = MODELS_DIR) -> None:
        self.models_dir = models_dir
        self._models: dict[ModelKey, LockedModel] = {}
        self._views: dict[str, Detector] = {}

    def __len__(self) -> int:
        return len(self._models)

    def detector(self, config: DetectorConfig) -> Detector:
        """The entry ``config`` as a detector: a view of the pooled model, or a classical
        smoke detector of its own."""
        if config.backend == "classical":
            return ClassicalSmokeDetector(config.classical_smoke)
        settings = config.model_dump_json()
        found = self._views.get(settings)
        if found is not None:
            return found
        key = model_key(config, self.models_dir)
        model = self._models.get(key)
        if model is None:
            model = LockedModel(load_model(config, self.models_dir))
            self._models[key] = model
        found = self._views[settings] = view(model, config)
        return found

    def keep_only(self, configs: Sequence[DetectorConfig]) -> None:
        """Forget the models no entry in ``configs`` uses (after a reload)."""
        loaded = [c for c in configs if c.backend != "classical"]
        wanted = {model_key(c, self.models_dir) for c in loaded}
        self._models = {k: m for k, m in self._models.items() if k in wanted}
        settings = {c.model_dump_json() for c in loaded}
        self._views = {k: v for k, v in self._views.items() if k in settings}


class EveryNth:
    """A detector run on every Nth frame it is given; its last boxes stand in between, so
    a persistence rule sees a slow model's smoke on every frame, not one in N."""

    def __init__(self, detector: Detector, every: int) -> None:
        self.detector = detector
        self.every = every
        self._count = 0
        self._last = Detections.empty()

    @property
    def classes(self) -> tuple[str, ...]:
        return self.detector.classes

    def detect(self, image: Image) -> Detections:
        if self._count % self.every == 0:
            self._last = self.detector.detect(image)
        self._count += 1
        return self._last


class MergedDetectors:
    """Several detectors on the same frame, as one: their boxes merged (:func:`merge`)."""

    def __init__(self, detectors: Sequence[Detector], iou: float = 0.7) -> None:
        self.detectors = tuple(detectors)
        self.iou = iou

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(n for d in self.detectors for n in d.classes))

    def detect(self, image: Image) -> Detections:
        return merge([d.detect(image) for d in self.detectors], self.iou)


def merge(found: Sequence[Detections], iou: float = 0.7) -> Detections:
    """The boxes of several detectors as one set: where two detectors report the same class
    over the same place (IoU above ``iou``), only the more confident box stays, so the
    tracker does not see one car twice."""
    found = [d for d in found if len(d)]
    if not found:
        return Detections.empty()
    if len(found) == 1:
        return found[0]
    from citywatch.models.yolo_onnx import nms  # late: this module loads without onnxruntime

    xyxy = np.concatenate([d.xyxy for d in found])
    confidence = np.concatenate([d.confidence for d in found])
    names = tuple(n for d in found for n in d.class_name)
    index = {name: i for i, name in enumerate(dict.fromkeys(names))}
    offset = np.array([index[n] for n in names], np.float32)[:, None] * np.float32(1e5)
    kept = np.sort(nms(xyxy + offset, confidence, iou))
    return Detections(xyxy[kept], confidence[kept], tuple(names[i] for i in kept))


def combine(entries: Sequence[tuple[DetectorConfig, Detector]]) -> Detector:
    """One camera's entries as the detector its pipeline calls: the lone detector itself
    when there is one run on every frame, else merged, each at its own cadence."""
    paced = [
        detector if config.every_n_frames == 1 else EveryNth(detector, config.every_n_frames)
        for config, detector in entries
    ]
    if len(paced) == 1:
        return paced[0]
    return MergedDetectors(paced)
