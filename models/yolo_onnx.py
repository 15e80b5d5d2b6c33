"""The onnx backend: a YOLO model exported by ultralytics, run with onnxruntime and numpy only.

For light gateways that cannot carry torch. Pre- and post-processing repeat ultralytics'
own (letterbox with grey 114 padding, frame-shaped for a dynamic export as ultralytics'
``predict(rect=True)``, best class per anchor, class-aware NMS, boxes scaled back with the
letterbox's rounding), so on the same weights both backends report the same boxes; a test
pins it. This module must never import torch or ultralytics (a test reads
its imports).
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from citywatch.models.detections import Image
from citywatch.models.detector_factory import (
    MappedDetector,
    ModelClasses,
    ModelFormatError,
    RawBoxes,
    check_weights,
)
from citywatch.models.letterbox import Letterbox, frame_input_hw, letterbox, undo_letterbox

__all__ = ["Letterbox", "OnnxDetector", "OnnxModel", "letterbox", "nms"]

log = logging.getLogger(__name__)

MAX_DET = 300
"""Boxes kept per image after NMS, as ultralytics."""
_CLASS_OFFSET_PX = 7680.0
"""Shift per class index that keeps NMS from suppressing across classes (ultralytics' max_wh)."""


def nms(
    boxes: NDArray[np.float32], scores: NDArray[np.float32], iou_threshold: float
) -> NDArray[np.intp]:
    """Indices kept by greedy NMS, best first; drops boxes overlapping a kept one by > iou."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = w * h
        union = areas[i] + areas[rest] - inter
        overlap = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[overlap <= iou_threshold]
    return np.asarray(keep, dtype=np.intp)


class OnnxModel:
    """A YOLO detection model exported to ONNX by ultralytics, on onnxruntime's CPU provider.

    A dynamic-shape export is fed frame-shaped input (``input_shape='frame'``); a
    fixed-size export is letterboxed to its own size."""

    def __init__(
        self,
        weights: Path,
        *,
        imgsz: int = 640,
        input_shape: Literal["frame", "square"] = "frame",
        threads: int | None = None,
        config_key: str = "detector.weights",
        spin_wait: bool = False,
    ) -> None:
        self.weights = check_weights(Path(weights), config_key)
        options = ort.SessionOptions()
        # Busy-waiting threads win a benchmark of the detector alone and lose on a gateway,
        # where they take the cores the camera loops and the clip worker need (measured in
        # benchmarks/edge.py: agent/bare 0.77 → 0.91 at imgsz 320 on 2 cores).
        options.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if spin_wait else "0"
        )
        options.add_session_config_entry(
            "session.inter_op.allow_spinning", "1" if spin_wait else "0"
        )
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(
                str(self.weights), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped Fail/InvalidGraph
            raise ModelFormatError(
                f"onnxruntime cannot load {self.weights} ({exc}); check that it is a complete"
                " ONNX file exported by ultralytics (format='onnx')"
            ) from exc
        meta = self._session.get_modelmeta().custom_metadata_map
        names = _metadata_names(meta, self.weights)
        self._names = tuple(names[i] for i in sorted(names))
        ModelClasses.build(names, {}, source=str(self.weights))  # indices run 0..n-1
        if meta.get("task", "detect") != "detect":
            raise ModelFormatError(
                f"{self.weights} is a {meta['task']!r} model; citywatch needs a 'detect' model"
            )
        self._end2end = meta.get("end2end", "False") == "True"
        model_input = self._session.get_inputs()[0]
        self._input_name = model_input.name
        self.input_hw = _input_size(model_input.shape, imgsz, meta, self.weights)
        """The fixed export's (h, w), or the square a dynamic export's input fits in."""
        self.fixed = _is_fixed(model_input.shape)
        self.frame_shaped = not self.fixed and input_shape == "frame"
        self.stride = int(meta.get("stride", "32"))
        self._shapes: dict[tuple[int, int], tuple[int, int]] = {}

    @property
    def model_names(self) -> tuple[str, ...]:
        return self._names

    def input_hw_for(self, frame_hw: tuple[int, int]) -> tuple[int, int]:
        """The (h, w) a frame of ``frame_hw`` is fed at: frame-shaped, or the fixed square."""
        if not self.frame_shaped:
            return self.input_hw
        shape = self._shapes.get(frame_hw)
        if shape is None:
            shape = frame_input_hw(frame_hw, self.input_hw[0], self.stride)
            self._shapes[frame_hw] = shape
        return shape

    def infer(self, image: Image, confidence: float, iou: float) -> RawBoxes:
        frame_hw = (int(image.shape[0]), int(image.shape[1]))
        padded, placement = letterbox(image, self.input_hw_for(frame_hw))
        blob = padded[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        output = self._session.run(None, {self._input_name: np.ascontiguousarray(blob)})[0]
        if self._end2end:
            boxes, scores, class_ids = _decode_end2end(np.asarray(output[0]), confidence)
        else:
            raw = np.asarray(output[0])
            boxes, scores, class_ids = self._decode(raw, confidence, iou)
        if not len(boxes):
            return RawBoxes.empty()
        return RawBoxes(undo_letterbox(boxes, placement, frame_hw), scores, class_ids)

    def _decode(
        self, raw: NDArray[np.float32], confidence: float, iou: float
    ) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.intp]]:
        """(4 + nc, N) rows of cx, cy, w, h and class scores → boxes after NMS."""
        nc = len(self._names)
        if raw.shape[0] != 4 + nc and raw.shape[1] == 4 + nc:
            raw = raw.T
        if raw.shape[0] != 4 + nc:
            raise ModelFormatError(
                f"{self.weights}: output of shape {raw.shape} does not match 4 + {nc} classes;"
                " re-export the model with ultralytics (format='onnx', nms=False)"
            )
        class_scores = raw[4:]
        class_ids = class_scores.argmax(axis=0)
        scores = class_scores[class_ids, np.arange(raw.shape[1])]
        keep = scores > confidence
        cx, cy, w, h = raw[:4, keep]
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        scores, class_ids = scores[keep], class_ids[keep]
        shifted = boxes + (class_ids[:, None] * _CLASS_OFFSET_PX).astype(np.float32)
        kept = nms(shifted, scores, iou)[:MAX_DET]
        return boxes[kept].astype(np.float32), scores[kept].astype(np.float32), class_ids[kept]


class OnnxDetector(MappedDetector):
    """An ONNX model with one detector entry's class map and floors (a camera alone)."""

    def __init__(
        self,
        weights: Path,
        *,
        imgsz: int = 640,
        input_shape: Literal["frame", "square"] = "frame",
        confidence: float = 0.25,
        class_confidence: Mapping[str, float] | None = None,
        iou: float = 0.5,
        class_map: Mapping[str, str] | None = None,
        threads: int | None = None,
        config_key: str = "detector.weights",
        spin_wait: bool = False,
    ) -> None:
        self.onnx = OnnxModel(
            weights,
            imgsz=imgsz,
            input_shape=input_shape,
            threads=threads,
            config_key=config_key,
            spin_wait=spin_wait,
        )
        super().__init__(
            self.onnx,
            confidence=confidence,
            class_confidence=class_confidence,
            iou=iou,
            class_map=class_map,
        )

    @property
    def input_hw(self) -> tuple[int, int]:
        return self.onnx.input_hw


def _decode_end2end(
    raw: NDArray[np.float32], confidence: float
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.intp]]:
    """(N, 6) rows of x1, y1, x2, y2, score, class from a model with NMS built in."""
    rows = raw[raw[:, 4] > confidence][:MAX_DET]
    return rows[:, :4].astype(np.float32), rows[:, 4].astype(np.float32), rows[:, 5].astype(np.intp)


def _is_fixed(shape: list[int | str | None]) -> bool:
    h, w = shape[2], shape[3]
    return isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0


def _metadata_names(meta: Mapping[str, str], weights: Path) -> dict[int, str]:
    """The ``names`` ultralytics writes into the ONNX metadata: a Python dict literal."""
    text = meta.get("names")
    if text is None:
        raise ModelFormatError(
            f"{weights} has no 'names' metadata, so its classes are unknown; export it with"
            " ultralytics (yolo export format=onnx) or use backend 'ultralytics'"
        )
    try:
        names = ast.literal_eval(text)
    except (ValueError, SyntaxError) as exc:
        raise ModelFormatError(f"{weights}: unreadable 'names' metadata {text[:80]!r}") from exc
    if isinstance(names, list | tuple):
        names = dict(enumerate(names))
    if not isinstance(names, dict) or not names:
        raise ModelFormatError(f"{weights}: 'names' metadata is not a class dict: {text[:80]!r}")
    return {int(k): str(v) for k, v in names.items()}


def _input_size(
    shape: list[int | str | None], imgsz: int, meta: Mapping[str, str], weights: Path
) -> tuple[int, int]:
    """The model's own (h, w) when exported with a fixed size, else ``imgsz`` square."""
    if len(shape) != 4:
        raise ModelFormatError(f"{weights}: input of shape {shape} is not NCHW")
    if _is_fixed(shape):
        h, w = int(shape[2]), int(shape[3])  # type: ignore[arg-type]
        if (h, w) != (imgsz, imgsz):
            log.info(
                "%s was exported at %dx%d; using that instead of detector.imgsz %d",
                weights,
                w,
                h,
                imgsz,
            )
        return h, w
    stride = int(meta.get("stride", "32"))
    if imgsz % stride:
        raise ModelFormatError(
            f"detector.imgsz {imgsz} is not a multiple of the model stride {stride}"
        )
    return imgsz, imgsz
