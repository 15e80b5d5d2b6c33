"""YOLO label maths for the learning loop's dataset: boxes in 0–1 coordinates, label lines,
the context region around a false positive, and the train/val split.

Pure functions (no files, no images), shared by :mod:`.dataset_export` and
:mod:`.labelled_dir`, so the arithmetic a trained model depends on is tested on its own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "NormBox",
    "Split",
    "crop_region",
    "iou",
    "label_line",
    "split_of",
    "within_region",
]

Split = Literal["train", "val"]


@dataclass(frozen=True)
class NormBox:
    """An xyxy box in 0–1 image coordinates (how alerts carry them: they survive a resize)."""

    x1: float
    y1: float
    x2: float
    y2: float

    def clipped(self) -> NormBox:
        """The part inside the image."""
        return NormBox(*(min(1.0, max(0.0, v)) for v in (self.x1, self.y1, self.x2, self.y2)))

    @property
    def area(self) -> float:
        return max(0.0, self.x2 - self.x1) * max(0.0, self.y2 - self.y1)

    @classmethod
    def from_cxcywh(cls, cx: float, cy: float, w: float, h: float) -> NormBox:
        return cls(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def label_line(class_index: int, box: NormBox) -> str | None:
    """The YOLO label line ``class cx cy w h`` of ``box`` clipped to the image; None when
    nothing of it is inside (a box no wider or taller than a rounding error teaches nothing)."""
    b = box.clipped()
    w, h = b.x2 - b.x1, b.y2 - b.y1
    if w <= 1e-6 or h <= 1e-6:
        return None
    return f"{class_index} {(b.x1 + b.x2) / 2:.6f} {(b.y1 + b.y2) / 2:.6f} {w:.6f} {h:.6f}"


def iou(a: NormBox, b: NormBox) -> float:
    inter = NormBox(max(a.x1, b.x1), max(a.y1, b.y1), min(a.x2, b.x2), min(a.y2, b.y2)).area
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def crop_region(box: NormBox, context: float = 1.0, min_side: float = 0.2) -> NormBox:
    """The region cut around a false positive: the box grown by ``context`` × its size on
    each side (at least ``min_side`` of the frame wide and tall), inside the frame. The
    model sees what fooled it with the surroundings it was seen in, at about the scale a
    detector's input has it."""
    b = box.clipped()
    w, h = b.x2 - b.x1, b.y2 - b.y1
    half_w = max((1 + 2 * context) * w, min_side) / 2
    half_h = max((1 + 2 * context) * h, min_side) / 2
    cx, cy = (b.x1 + b.x2) / 2, (b.y1 + b.y2) / 2
    # Shift into the frame rather than cut, so a box at the border keeps its context.
    x1 = min(max(0.0, cx - half_w), max(0.0, 1.0 - 2 * half_w))
    y1 = min(max(0.0, cy - half_h), max(0.0, 1.0 - 2 * half_h))
    return NormBox(x1, y1, min(1.0, x1 + 2 * half_w), min(1.0, y1 + 2 * half_h))


def within_region(box: NormBox, region: NormBox, min_visible: float = 0.25) -> NormBox | None:
    """``box`` in the coordinates of ``region`` (a crop), clipped to it; None when less than
    ``min_visible`` of the box is inside (a sliver is dropped rather than labelled)."""
    inside = NormBox(
        max(box.x1, region.x1), max(box.y1, region.y1),
        min(box.x2, region.x2), min(box.y2, region.y2),
    )  # fmt: skip
    if box.area <= 0 or inside.area < min_visible * box.area:
        return None
    w, h = region.x2 - region.x1, region.y2 - region.y1
    return NormBox(
        (inside.x1 - region.x1) / w, (inside.y1 - region.y1) / h,
        (inside.x2 - region.x1) / w, (inside.y2 - region.y1) / h,
    )  # fmt: skip


def split_of(image_sha256: str, val_fraction: float, seed: int = 0) -> Split:
    """``val`` for about ``val_fraction`` of images, chosen by a hash of the image's SHA-256
    and ``seed``: a re-export keeps every image in its split (a model's validation images
    never drift into its training set) and needs no state."""
    digest = hashlib.sha256(f"{seed}:{image_sha256}".encode()).digest()
    return "val" if int.from_bytes(digest[:8], "big") / 2**64 < val_fraction else "train"
