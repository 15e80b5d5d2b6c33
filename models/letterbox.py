"""Where a frame goes inside a YOLO model's input, and how boxes come back out.

Frame-shaped input is ultralytics' own ``LetterBox(auto=True)``: the frame is scaled so its
long side is ``imgsz`` and padded only up to the model stride, so a 1280×720 frame at 320
becomes 320×192 instead of 320×320 (40 % fewer pixels through the network, the same
scale, hence the same boxes). A model exported with a fixed input size gets the full
square (or its own shape). Pure numpy and OpenCV, shared by both backends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from citywatch.models.detections import Image

__all__ = ["Letterbox", "frame_input_hw", "letterbox", "undo_letterbox"]


@dataclass(frozen=True, slots=True)
class Letterbox:
    """Where an image went inside the model input: scale per axis and top-left padding."""

    gain_x: float
    gain_y: float
    pad_x: int
    pad_y: int


def frame_input_hw(frame_hw: tuple[int, int], imgsz: int, stride: int = 32) -> tuple[int, int]:
    """The smallest stride-aligned (h, w) holding the frame scaled to ``imgsz`` on its long
    side: ultralytics' minimal padding (``LetterBox(auto=True)``, ``predict(rect=True)``)."""
    h, w = frame_hw
    r = min(imgsz / h, imgsz / w)
    new_h, new_w = max(round(h * r), 1), max(round(w * r), 1)
    return math.ceil(new_h / stride) * stride, math.ceil(new_w / stride) * stride


def letterbox(
    image: Image, size_hw: tuple[int, int], pad_value: int = 114
) -> tuple[NDArray[np.uint8], Letterbox]:
    """Resize keeping the aspect ratio, then pad centred to ``size_hw`` (ultralytics' rounding)."""
    h, w = image.shape[:2]
    out_h, out_w = size_hw
    r = min(out_h / h, out_w / w)
    new_w, new_h = max(round(w * r), 1), max(round(h * r), 1)
    if (new_w, new_h) != (w, h):
        image = np.asarray(cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR))
    dw, dh = (out_w - new_w) / 2, (out_h - new_h) / 2
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    padded = cv2.copyMakeBorder(
        image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(pad_value,) * 3
    )
    return np.asarray(padded, np.uint8), Letterbox(new_w / w, new_h / h, left, top)


def undo_letterbox(
    boxes: NDArray[np.float32], placement: Letterbox, shape_hw: tuple[int, ...]
) -> NDArray[np.float32]:
    """Boxes in model-input pixels → source pixels, clipped to the frame."""
    out = boxes.astype(np.float32, copy=True)
    out[:, [0, 2]] = (out[:, [0, 2]] - placement.pad_x) / placement.gain_x
    out[:, [1, 3]] = (out[:, [1, 3]] - placement.pad_y) / placement.gain_y
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, shape_hw[1])
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, shape_hw[0])
    return out
