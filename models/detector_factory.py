"""Build the detector a camera's config names, and the checks every backend shares.

The errors a deployment meets first live here: weights that are not where the config says,
a ``class_map`` naming a class the model lacks, a rule asking for a class no detector
reports. Backends are imported only when chosen, so an onnx gateway never imports torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from citywatch.config.detector import DetectorConfig
from citywatch.models.detections import Detections, Detector

__all__ = [
    "MODELS_DIR",
    "BackendUnavailable",
    "DetectorError",
    "ModelClasses",
    "ModelFormatError",
    "UnknownClass",
    "WeightsNotFound",
    "check_weights",
    "load_detector",
    "require_classes",
]

MODELS_DIR = Path(__file__).resolve().parent
"""The repository's ``models/`` folder: relative weights paths and the bundled model."""


class DetectorError(Exception):
    """A detector cannot be built or cannot serve what the config asks of it."""


class WeightsNotFound(DetectorError, FileNotFoundError):
    def __init__(self, path: Path, config_key: str) -> None:
        self.path = path
        self.config_key = config_key
        super().__init__(
            f"model weights not found at {path} (config key {config_key!r}); put the model"
            f" file there or point {config_key} at an existing .pt, .onnx or OpenVINO folder"
        )


class UnknownClass(DetectorError, ValueError):
    def __init__(self, missing: Sequence[str], available: Sequence[str], context: str) -> None:
        self.missing = tuple(missing)
        self.available = tuple(available)
        super().__init__(
            f"{context} uses class(es) {list(self.missing)} that the model does not detect;"
            f" it detects {list(self.available)}. Fix the names, or map a model class to them"
            f" with detector.class_map"
        )


class ModelFormatError(DetectorError, ValueError):
    """The weights load but are not a detection model citywatch can read."""


class BackendUnavailable(DetectorError, ImportError):
    """The chosen backend's library is not installed on this machine."""


def check_weights(path: Path, config_key: str = "detector.weights") -> Path:
    """``path`` if it exists (a file, or an OpenVINO folder); :class:`WeightsNotFound` if not."""
    if not path.exists():
        raise WeightsNotFound(path, config_key)
    return path


@dataclass(frozen=True)
class ModelClasses:
    """A model's class names by index, and the citywatch class each one reports as."""

    model_names: tuple[str, ...]
    names: tuple[str, ...]
    """Citywatch class per model class index (``class_map`` applied)."""

    @classmethod
    def build(
        cls,
        model_names: Mapping[int, str] | Sequence[str],
        class_map: Mapping[str, str],
        *,
        source: str,
    ) -> ModelClasses:
        """Apply ``class_map``; :class:`UnknownClass` if it names a class the model lacks."""
        if isinstance(model_names, Mapping):
            if sorted(model_names) != list(range(len(model_names))):
                raise ModelFormatError(
                    f"{source}: class indices must run 0..{len(model_names) - 1},"
                    f" got {sorted(model_names)}; re-export the model with ultralytics"
                )
            ordered = tuple(str(model_names[i]) for i in range(len(model_names)))
        else:
            ordered = tuple(str(name) for name in model_names)
        unknown = [name for name in class_map if name not in ordered]
        if unknown:
            raise UnknownClass(unknown, ordered, f"detector.class_map for {source}")
        return cls(ordered, tuple(class_map.get(name, name) for name in ordered))

    @property
    def classes(self) -> tuple[str, ...]:
        """The distinct citywatch classes reported, in model order."""
        return tuple(dict.fromkeys(self.names))


class MappedClassesMixin:
    """What both YOLO backends share: their classes, from their :class:`ModelClasses`, and
    the confidence floors their boxes must clear."""

    _mapping: ModelClasses
    confidence: float
    class_confidence: Mapping[str, float]

    @property
    def classes(self) -> tuple[str, ...]:
        return self._mapping.classes

    @property
    def model_classes(self) -> tuple[str, ...]:
        """The model's own class names, by class index."""
        return self._mapping.model_names

    def require_classes(self, names: Iterable[str], context: str = "a rule") -> None:
        require_classes(self, names, context)  # type: ignore[arg-type]

    def _set_floors(self, confidence: float, class_confidence: Mapping[str, float] | None) -> None:
        self.confidence = confidence
        self.class_confidence = dict(class_confidence or {})
        unknown = sorted(set(self.class_confidence) - set(self.classes))
        if unknown:
            raise UnknownClass(unknown, self.classes, "detector.class_confidence")

    @property
    def model_confidence(self) -> float:
        """What the model runs with: the lowest floor of any class."""
        return min([self.confidence, *self.class_confidence.values()])

    def _finish(self, detections: Detections) -> Detections:
        """Both backends' last step, so they still agree: no empty boxes (those lying wholly
        in the letterbox padding, clipped flat at the image edge), and each box above its
        class's floor (the model ran at the lowest)."""
        xyxy = detections.xyxy
        keep = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
        if self.class_confidence:
            floors = [self.class_confidence.get(n, self.confidence) for n in detections.class_name]
            keep &= detections.confidence > np.asarray(floors, np.float32)
        return detections.where(keep)


def require_classes(detector: Detector, wanted: Iterable[str], context: str = "a rule") -> None:
    """:class:`UnknownClass` listing the detector's classes if ``wanted`` names others.

    Run when a camera starts, for each rule, so a typo or a model without the class fails
    loudly at start instead of never alerting.
    """
    available = detector.classes
    missing = [name for name in dict.fromkeys(wanted) if name not in available]
    if missing:
        raise UnknownClass(missing, available, context)


def load_detector(config: DetectorConfig, models_dir: Path = MODELS_DIR) -> Detector:
    """The detector ``config`` describes; weights are checked before any library loads."""
    weights = check_weights(config.weights_path(models_dir))
    if config.backend == "onnx":
        from citywatch.models.yolo_onnx import OnnxDetector

        return OnnxDetector(
            weights,
            imgsz=config.imgsz,
            confidence=config.confidence,
            class_confidence=config.model_floors(),
            iou=config.iou,
            class_map=config.class_map,
            threads=config.threads,
            spin_wait=config.spin_wait,
        )
    from citywatch.models.yolo_ultralytics import UltralyticsDetector

    return UltralyticsDetector(
        weights,
        imgsz=config.imgsz,
        confidence=config.confidence,
        class_confidence=config.model_floors(),
        iou=config.iou,
        class_map=config.class_map,
        device=config.device,
    )
