"""The learning loop's dataset: the duty officers' verdicts on camera alerts and an
operator's own labelled frames, planned as a standard ultralytics YOLO dataset.

Input is plain data (no database here): each :class:`VerdictAlert` is one camera alert of a
decided work order with its clean frame (the ``frame`` evidence: what the camera saw,
nothing drawn), its class and normalised box, and the verdict. :func:`plan_dataset` decides
which images and labels there will be; :mod:`.dataset_files` writes them.

* **Confirmed** alerts become training images with their boxes; alerts on one frame (same
  SHA-256) become one image with all their boxes, near-duplicates merged.
* **False positives** are hard negatives — what fooled the model, labelled as nothing. How
  (``negatives``):

  - ``crop`` (default): the false positive's region with context (the box grown by its size
    on each side, at least a fifth of the frame) as an image of its own, its label file
    empty except for confirmed boxes that fall inside. A whole frame with an empty label
    file would also teach "background" for every real car or person in it that no rule
    alerted on (most of a street), and un-train exactly what a COCO model is good at; the
    crop keeps the lesson to the spot that fooled it.
  - ``frame``: the full frame, labelled with the confirmed boxes on that frame (none if
    none). Right where the camera's whole view is in the detector's classes of interest
    (a fire/smoke model on a forest camera): it shows the false positive at its real scale.
  - ``none``: false positives are left out (counted).

  A false positive whose box overlaps (IoU ≥ 0.5) a confirmed box of the same class on
  the same frame is a contradiction and is not used (listed in the manifest).
* **Labelled frames** (``--labelled``): boxes mapped by class name onto the dataset's
  names; an image that is also an alert's frame keeps the operator's labels (complete,
  where the alerts are only what the rules saw).

The split is by a hash of the source image's SHA-256 (:func:`.yolo_labels.split_of`): a
re-export keeps each image, and each crop of it, in the same split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from citywatch.models.labelled_dir import LabelledImage
from citywatch.models.yolo_labels import NormBox, Split, crop_region, iou, split_of

__all__ = [
    "DatasetError",
    "DatasetPlan",
    "Missing",
    "NegativeMode",
    "PlannedImage",
    "VerdictAlert",
    "plan_dataset",
]

NegativeMode = Literal["crop", "frame", "none"]
Verdict = Literal["confirmed", "false_positive"]
SAME_OBJECT_IOU = 0.9
"""Boxes of one class on one frame this alike are one object (two rules saw it)."""
CONTRADICTION_IOU = 0.5


class DatasetError(ValueError):
    """The dataset cannot be built as asked; the message says what to change."""


@dataclass(frozen=True)
class VerdictAlert:
    """One camera alert of a decided order, with where its clean frame's bytes are."""

    alert_id: str
    order_id: str
    order_number: str | None
    camera: str
    kind: str
    class_name: str
    box: NormBox | None
    verdict: Verdict
    decision: str
    """The deciding event (``resolved``, ``false_positive``, …)."""
    reason: str | None
    frame_sha256: str | None
    frame_path: Path | None
    """Where the frame's bytes are; None when they cannot be found (``missing`` says why)."""
    missing: str | None = None


@dataclass(frozen=True)
class Missing:
    """An alert that could not become part of the dataset, and why (never dropped silently)."""

    alert_id: str
    order_id: str
    order_number: str | None
    camera: str
    verdict: str
    reason: str

    @classmethod
    def of(cls, alert: VerdictAlert, reason: str) -> Missing:
        return cls(alert.alert_id, alert.order_id, alert.order_number, alert.camera,
                   alert.verdict, reason)  # fmt: skip


@dataclass
class PlannedImage:
    """One image of the dataset: its source, the region cut from it (negative crops), and
    its boxes by class index in the source's 0–1 coordinates."""

    name: str
    suffix: str
    split: Split
    source: Path
    source_sha256: str
    origin: Literal["verdict", "hard_negative", "labelled"]
    boxes: list[tuple[int, NormBox]] = field(default_factory=list)
    region: NormBox | None = None
    alerts: list[VerdictAlert] = field(default_factory=list)
    """The alerts this image stands for (several on one frame)."""


@dataclass
class DatasetPlan:
    names: tuple[str, ...]
    images: list[PlannedImage]
    missing: list[Missing]
    conflicts: list[Missing]
    alerts_by_verdict: dict[str, int]
    """Alerts whose frame went into the dataset, per verdict."""
    negatives_left_out: int
    """False positives not used because ``negatives`` is ``none``."""


class ClassIndex:
    """Class name → dataset index, matched as the detectors compare names (case-insensitive
    after the alert class map)."""

    def __init__(self, names: Sequence[str], class_map: Mapping[str, str]) -> None:
        self.names = tuple(names)
        self.class_map = {k.lower(): v for k, v in class_map.items()}
        self._index: dict[str, int] = {}
        for index, name in enumerate(self.names):
            self._index.setdefault(name.lower(), index)

    def of(self, name: str) -> int | None:
        mapped = self.class_map.get(name.lower(), name)
        return self._index.get(mapped.lower())


def dataset_names(
    alerts: Iterable[VerdictAlert],
    labelled: Iterable[LabelledImage],
    class_map: Mapping[str, str],
) -> tuple[str, ...]:
    """The names when no model fixes them: every class seen (after the class map), sorted."""
    seen: dict[str, str] = {}
    lowered = {k.lower(): v for k, v in class_map.items()}
    for alert in alerts:
        if alert.verdict == "confirmed":
            name = lowered.get(alert.class_name.lower(), alert.class_name)
            seen.setdefault(name.lower(), name)
    for image in labelled:
        for box in image.boxes:
            name = lowered.get(box.name.lower(), box.name)
            seen.setdefault(name.lower(), name)
    return tuple(sorted(seen.values()))


def _check_alert_classes(alerts: Sequence[VerdictAlert], index: ClassIndex) -> None:
    unknown: dict[str, list[str]] = {}
    for alert in alerts:
        if alert.verdict == "confirmed" and index.of(alert.class_name) is None:
            unknown.setdefault(alert.class_name, []).append(alert.alert_id)
    if unknown:
        listed = "; ".join(f"{name} ({len(ids)} alerts, e.g. {ids[0]})"
                           for name, ids in sorted(unknown.items()))  # fmt: skip
        raise DatasetError(
            f"confirmed alerts name classes the model does not have: {listed}. The model's"
            f" names: {', '.join(index.names)}. A camera's class_map renamed them? map them"
            " back with --map ALERT_CLASS=MODEL_CLASS"
        )


def _merge(boxes: list[tuple[int, NormBox]]) -> list[tuple[int, NormBox]]:
    """``boxes`` without near-duplicates of one class (the first kept)."""
    kept: list[tuple[int, NormBox]] = []
    for cls, box in boxes:
        if not any(c == cls and iou(b, box) >= SAME_OBJECT_IOU for c, b in kept):
            kept.append((cls, box))
    return kept


def _short(sha256: str) -> str:
    return sha256[:16]


def plan_dataset(
    alerts: Sequence[VerdictAlert],
    labelled: Sequence[LabelledImage] = (),
    *,
    names: Sequence[str] | None = None,
    class_map: Mapping[str, str] | None = None,
    negatives: NegativeMode = "crop",
    val_fraction: float = 0.2,
    seed: int = 0,
    context: float = 1.0,
) -> DatasetPlan:
    """The images and labels of the dataset (see the module docstring); raises
    :class:`DatasetError` for a class the fixed ``names`` lack."""
    if not 0.0 <= val_fraction < 1.0:
        raise DatasetError(f"val fraction {val_fraction} must be at least 0 and below 1")
    class_map = dict(class_map or {})
    index = ClassIndex(
        names if names is not None else dataset_names(alerts, labelled, class_map), class_map
    )
    _check_alert_classes(alerts, index)
    plan = DatasetPlan(index.names, [], [], [], {"confirmed": 0, "false_positive": 0}, 0)

    frames: dict[str, list[VerdictAlert]] = {}
    for alert in alerts:
        if alert.missing is not None or alert.frame_path is None or alert.frame_sha256 is None:
            plan.missing.append(Missing.of(alert, alert.missing or "no frame evidence"))
        elif alert.box is None:
            plan.missing.append(Missing.of(alert, "the alert carries no box (x1..y2 attributes)"))
        else:
            frames.setdefault(alert.frame_sha256, []).append(alert)
    by_sha = {image.sha256: image for image in labelled}

    for sha, on_frame in sorted(frames.items()):
        first = on_frame[0]
        assert first.frame_path is not None
        stem = f"{first.camera}-{_short(sha)}"
        split = split_of(sha, val_fraction, seed)
        operator = by_sha.pop(sha, None)
        if operator is not None:
            truth = _labelled_boxes(operator, index)
            image = PlannedImage(f"labelled-{_short(sha)}", operator.path.suffix.lower(), split,
                                 operator.path, sha, "labelled", truth)  # fmt: skip
        else:
            truth = _merge([(_class(a, index), a.box) for a in on_frame
                            if a.verdict == "confirmed" and a.box is not None])  # fmt: skip
            image = PlannedImage(stem, first.frame_path.suffix.lower() or ".jpg", split,
                                 first.frame_path, sha, "verdict", truth)  # fmt: skip
        shown = operator is not None or bool(truth)
        for alert in on_frame:
            if alert.verdict == "confirmed":
                _note(image, alert)
                plan.alerts_by_verdict["confirmed"] += 1
                continue
            assert alert.box is not None
            fp_class = index.of(alert.class_name)
            if any(c == fp_class and iou(b, alert.box) >= CONTRADICTION_IOU for c, b in truth):
                plan.conflicts.append(Missing.of(alert, "a confirmed box of the same class is"
                                               " there on the same frame"))  # fmt: skip
            elif negatives == "none":
                plan.negatives_left_out += 1
            elif negatives == "frame":
                if not shown:
                    image.origin = "hard_negative"
                shown = True
                _note(image, alert)
                plan.alerts_by_verdict["false_positive"] += 1
            else:
                region = crop_region(alert.box, context)
                key = hashlib.sha256(repr(region).encode()).hexdigest()[:8]
                crop = PlannedImage(f"{stem}-fp-{key}", ".png", split, image.source, sha,
                                    "hard_negative", list(truth), region)  # fmt: skip
                known = next((i for i in plan.images if i.name == crop.name), None)
                if known is None:
                    plan.images.append(crop)
                _note(known or crop, alert)
                plan.alerts_by_verdict["false_positive"] += 1
        if shown:
            plan.images.append(image)

    for operator in labelled:
        if operator.sha256 in by_sha:
            split = split_of(operator.sha256, val_fraction, seed)
            plan.images.append(PlannedImage(
                f"labelled-{_short(operator.sha256)}", operator.path.suffix.lower(), split,
                operator.path, operator.sha256, "labelled", _labelled_boxes(operator, index),
            ))  # fmt: skip
            by_sha.pop(operator.sha256)
    plan.images.sort(key=lambda i: (i.split, i.name))
    return plan


def _class(alert: VerdictAlert, index: ClassIndex) -> int:
    found = index.of(alert.class_name)
    assert found is not None  # _check_alert_classes ran
    return found


def _note(image: PlannedImage, alert: VerdictAlert) -> None:
    image.alerts.append(alert)


def _labelled_boxes(image: LabelledImage, index: ClassIndex) -> list[tuple[int, NormBox]]:
    boxes = []
    for box in image.boxes:
        found = index.of(box.name)
        if found is None:
            raise DatasetError(
                f"{box.where}: class {box.name!r} is not among the dataset's names"
                f" ({', '.join(index.names)}); rename it in the folder's classes.txt or"
                " data.yaml, or map it with --map"
            )
        boxes.append((found, box.box))
    return boxes
