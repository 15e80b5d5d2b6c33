"""Build the detector a camera's config names, and the checks every backend shares.

The errors a deployment meets first live here: weights that are not where the config says,
a ``class_map`` naming a class the model lacks, a rule asking for a class no detector
reports. Backends are imported only when chosen, so an onnx gateway never imports torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from citywatch.config.detector import DetectorConfig, canonical_class
from citywatch.models.detections import Detections, Detector, Image

__all__ = [
    "MODELS_DIR",
    "BackendUnavailable",
    "DetectorError",
    "MappedDetector",
    "ModelClasses",
    "ModelFormatError",
    "RawBoxes",
    "UnknownClass",
    "WeightsNotFound",
    "YoloModel",
    "check_weights",
    "load_detector",
    "load_model",
    "require_classes",
    "view",
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
    """Citywatch class per model class index (``class_map`` applied, others in lower case)."""

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
        mapping = dict(class_map)
        return cls(ordered, tuple(canonical_class(name, mapping) for name in ordered))

    @property
    def classes(self) -> tuple[str, ...]:
        """The distinct citywatch classes reported, in model order."""
        return tuple(dict.fromkeys(self.names))


@dataclass(frozen=True)
class RawBoxes:
    """A model's boxes in source pixels after NMS, by model class index: what a model
    shared by several cameras returns before each camera maps and filters them."""

    xyxy: NDArray[np.float32]
    confidence: NDArray[np.float32]
    class_id: NDArray[np.intp]

    @classmethod
    def empty(cls) -> RawBoxes:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.intp))


class YoloModel(Protocol):
    """A loaded YOLO model: its class names, and boxes for an image at a floor and NMS IoU."""

    weights: Path

    @property
    def model_names(self) -> tuple[str, ...]: ...

    def infer(self, image: Image, confidence: float, iou: float) -> RawBoxes: ...


class MappedDetector:
    """One detector entry's view of a (possibly shared) model: its ``class_map``, its
    confidence floors, its NMS IoU and its ``classes`` filter."""

    def __init__(
        self,
        model: YoloModel,
        *,
        confidence: float = 0.25,
        class_confidence: Mapping[str, float] | None = None,
        iou: float = 0.5,
        class_map: Mapping[str, str] | None = None,
        classes: Sequence[str] | None = None,
    ) -> None:
        self.model = model
        self._mapping = ModelClasses.build(
            model.model_names, class_map or {}, source=str(model.weights)
        )
        if classes is not None:
            unknown = sorted(set(classes) - set(self._mapping.classes))
            if unknown:
                raise UnknownClass(unknown, self._mapping.classes, "detector.classes")
        self._only = frozenset(classes) if classes is not None else None
        self.confidence = confidence
        self.class_confidence = dict(class_confidence or {})
        unknown = sorted(set(self.class_confidence) - set(self._mapping.classes))
        if unknown:
            raise UnknownClass(unknown, self._mapping.classes, "detector.class_confidence")
        self.iou = iou

    @property
    def classes(self) -> tuple[str, ...]:
        names = self._mapping.classes
        return names if self._only is None else tuple(n for n in names if n in self._only)

    @property
    def model_classes(self) -> tuple[str, ...]:
        """The model's own class names, by class index."""
        return self._mapping.model_names

    def require_classes(self, names: Iterable[str], context: str = "a rule") -> None:
        require_classes(self, names, context)

    @property
    def model_confidence(self) -> float:
        """What the model runs with: the lowest floor of any class."""
        return min([self.confidence, *self.class_confidence.values()])

    def detect(self, image: Image) -> Detections:
        raw = self.model.infer(image, self.model_confidence, self.iou)
        if not len(raw.class_id):
            return Detections.empty()
        names = tuple(self._mapping.names[int(c)] for c in raw.class_id)
        return self._finish(Detections(raw.xyxy, np.clip(raw.confidence, 0.0, 1.0), names))

    def _finish(self, detections: Detections) -> Detections:
        """Both backends' last step, so they still agree: no empty boxes (those lying wholly
        in the letterbox padding, clipped flat at the image edge), each box above its
        class's floor (the model ran at the lowest), and only the classes asked for."""
        xyxy = detections.xyxy
        keep = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
        if self.class_confidence:
            floors = [self.class_confidence.get(n, self.confidence) for n in detections.class_name]
            keep &= detections.confidence > np.asarray(floors, np.float32)
        if self._only is not None:
            keep &= np.array([n in self._only for n in detections.class_name], np.bool_)
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


def load_model(config: DetectorConfig, models_dir: Path = MODELS_DIR) -> YoloModel:
    """The YOLO model ``config`` names, without its per-entry mapping and floors (what
    cameras share); weights are checked before any library loads."""
    weights = check_weights(config.weights_path(models_dir))
    if config.backend == "onnx":
        from citywatch.models.yolo_onnx import OnnxModel

        return OnnxModel(
            weights,
            imgsz=config.imgsz,
            input_shape=config.input_shape,
            threads=config.threads,
            spin_wait=config.spin_wait,
        )
    from citywatch.models.yolo_ultralytics import UltralyticsModel

    return UltralyticsModel(
        weights, imgsz=config.imgsz, input_shape=config.input_shape, device=config.device
    )


def view(model: YoloModel, config: DetectorConfig) -> MappedDetector:
    """``model`` as the detector entry ``config`` uses it (its map, floors and filter)."""
    return MappedDetector(
        model,
        confidence=config.confidence,
        class_confidence=config.model_floors(),
        iou=config.iou,
        class_map=config.class_map,
        classes=config.classes,
    )


def load_detector(config: DetectorConfig, models_dir: Path = MODELS_DIR) -> Detector:
    """The detector ``config`` describes, for one camera alone (a gateway shares models
    through :class:`~citywatch.models.detector_set.ModelPool`)."""
    if config.backend == "classical":
        from citywatch.models.smoke_classical import ClassicalSmokeDetector

        return ClassicalSmokeDetector(config.classical_smoke)
    return view(load_model(config, models_dir), config)
