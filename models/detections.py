"""The one type detections travel as, and the interface every detector implements.

A struct of arrays like supervision's ``sv.Detections``: ``xyxy`` (N, 4) float32 pixel
corners, ``confidence`` (N,) float32 in [0, 1], ``class_name`` (N,) names. Shapes and
ranges are checked at construction, so nothing past ``models/`` sees a malformed box.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

__all__ = ["Detection", "Detections", "Detector", "Image"]

Image = NDArray[np.uint8]
"""An H×W×3 BGR image, as OpenCV decodes it."""


@dataclass(frozen=True, slots=True)
class Detection:
    """One row of :class:`Detections`, for code that handles boxes one at a time."""

    x1: float
    y1: float
    x2: float
    y2: float
    confidence: float
    class_name: str


@dataclass(frozen=True)
class Detections:
    xyxy: NDArray[np.float32]
    confidence: NDArray[np.float32]
    class_name: tuple[str, ...]

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        confidence = np.asarray(self.confidence, dtype=np.float32).reshape(-1)
        names = tuple(self.class_name)
        if not len(xyxy) == len(confidence) == len(names):
            raise ValueError(
                f"detections need as many boxes, confidences and class names:"
                f" {len(xyxy)}, {len(confidence)}, {len(names)}"
            )
        if len(xyxy) and (
            not np.isfinite(xyxy).all()
            or (xyxy[:, 2] < xyxy[:, 0]).any()
            or (xyxy[:, 3] < xyxy[:, 1]).any()
        ):
            raise ValueError("every box must be finite with x1 <= x2 and y1 <= y2")
        if len(confidence) and ((confidence < 0).any() or (confidence > 1).any()):
            raise ValueError("confidences must lie in [0, 1]")
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "confidence", confidence)
        object.__setattr__(self, "class_name", names)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), ())

    @classmethod
    def from_rows(cls, rows: Sequence[Detection]) -> Detections:
        if not rows:
            return cls.empty()
        return cls(
            np.array([[r.x1, r.y1, r.x2, r.y2] for r in rows], np.float32),
            np.array([r.confidence for r in rows], np.float32),
            tuple(r.class_name for r in rows),
        )

    def __len__(self) -> int:
        return len(self.class_name)

    def where(self, keep: NDArray[np.bool_]) -> Detections:
        """The detections whose entry in ``keep`` is true, in their order."""
        if keep.all():
            return self
        names = tuple(name for name, kept in zip(self.class_name, keep, strict=True) if kept)
        return Detections(self.xyxy[keep], self.confidence[keep], names)

    def __iter__(self) -> Iterator[Detection]:
        for (x1, y1, x2, y2), conf, name in zip(
            self.xyxy.tolist(), self.confidence.tolist(), self.class_name, strict=True
        ):
            yield Detection(x1, y1, x2, y2, conf, name)


class Detector(Protocol):
    """``detect(image) -> Detections``: what every detector offers the agents."""

    @property
    def classes(self) -> tuple[str, ...]: ...

    def detect(self, image: Image) -> Detections: ...


def box_area(box: Sequence[float]) -> float:
    """Area of an xyxy box."""
    return (box[2] - box[0]) * (box[3] - box[1])


def intersection(a: Sequence[float], b: Sequence[float]) -> float:
    """Area two xyxy boxes share (0 when apart)."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return w * h


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two xyxy boxes."""
    inter = intersection(a, b)
    union = box_area(a) + box_area(b) - inter
    return inter / union if union > 0 else 0.0
