"""Score a detector on labelled images, and judge a candidate model against the current one.

Pure: boxes in, counts out. Per class, a confirmed box is found when a detection of the same
class (after the camera's class mapping) overlaps it at IoU ≥ 0.5, each detection finding at
most one box (highest confidence first). A detection of a class on an image that has no box
of that class is a false alarm: that is what a false-positive verdict (a hard negative)
becomes in the dataset. The verdict rule is written out in :class:`VerdictRule`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, Field

from citywatch.models.detections import Detections, iou

__all__ = [
    "ClassScore",
    "ModelScore",
    "SuiteScore",
    "Verdict",
    "VerdictRule",
    "judge",
    "score_images",
]


EPSILON = 1e-9
"""A change of exactly the tolerance (one box of 20 at 0.05) is within it, float or not."""


@dataclass(frozen=True)
class Truth:
    """One labelled image's confirmed boxes (source pixels) and their classes."""

    xyxy: NDArray[np.float32]
    classes: tuple[str, ...]


class ClassScore(BaseModel):
    """Counts for one class over the images."""

    boxes: int = 0
    found: int = 0
    false_alarms: int = 0
    """Detections on images without a box of this class (hard negatives among them)."""
    unmatched: int = 0
    """Detections on images with boxes of this class that matched none of them."""

    @property
    def recall(self) -> float | None:
        return self.found / self.boxes if self.boxes else None

    @property
    def precision(self) -> float | None:
        raised = self.found + self.false_alarms + self.unmatched
        return self.found / raised if raised else None


class ModelScore(BaseModel):
    """A model's figures on the back-test images."""

    images: int = 0
    negatives: int = 0
    """Images with no box at all (pure hard negatives)."""
    classes: dict[str, ClassScore] = Field(default_factory=dict)

    @property
    def false_alarms(self) -> int:
        return sum(c.false_alarms for c in self.classes.values())

    @property
    def precision(self) -> float | None:
        found = sum(c.found for c in self.classes.values())
        raised = found + self.false_alarms + sum(c.unmatched for c in self.classes.values())
        return found / raised if raised else None

    @property
    def recall(self) -> float | None:
        boxes = sum(c.boxes for c in self.classes.values())
        return sum(c.found for c in self.classes.values()) / boxes if boxes else None


class SuiteScore(BaseModel):
    """The scenario suite's events for a model (``citywatch edge suite``'s live path)."""

    tp: int
    fp: int
    fn: int

    @property
    def f1(self) -> float:
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn) if self.tp else 0.0


def score_images(
    pairs: Iterable[tuple[Truth, Detections]], classes: Sequence[str], min_iou: float = 0.5
) -> ModelScore:
    """Score (truth, detections) per image on ``classes`` (other detected classes are not
    judged: the verdicts say nothing about them)."""
    result = ModelScore(classes={name: ClassScore() for name in classes})
    for truth, detections in pairs:
        result.images += 1
        result.negatives += not truth.classes
        for name, counts in result.classes.items():
            wanted = np.array([c == name for c in truth.classes], np.bool_)
            shown = np.array([c == name for c in detections.class_name], np.bool_)
            boxes = truth.xyxy[wanted] if len(wanted) else np.zeros((0, 4), np.float32)
            found = detections.xyxy[shown] if len(shown) else np.zeros((0, 4), np.float32)
            counts.boxes += len(boxes)
            if not len(boxes):
                counts.false_alarms += len(found)
                continue
            confidence = detections.confidence[shown]
            free = [True] * len(boxes)
            for index in np.argsort(-confidence):
                overlaps = [
                    iou(found[index], box) if free[k] else 0.0 for k, box in enumerate(boxes)
                ]
                best = int(np.argmax(overlaps))
                if overlaps[best] >= min_iou:
                    free[best] = False
                    counts.found += 1
                else:
                    counts.unmatched += 1
    return result


class VerdictRule(BaseModel):
    """When a candidate is worse, the same or better than the current model.

    Worse: on any class with at least ``min_boxes`` confirmed boxes (or over all classes)
    recall drops by more than ``recall_tolerance``; or false alarms on the images rise by more than
    ``false_alarm_tolerance``; or the scenario suite's F1 drops by more than
    ``f1_tolerance``. Better: not worse, and recall rises past the tolerance on such a
    class, false alarms fall, or the suite's F1 rises past its tolerance. Else the same.
    """

    min_boxes: int = 5
    recall_tolerance: float = 0.05
    false_alarm_tolerance: int = 0
    f1_tolerance: float = 0.02

    def describe(self) -> str:
        return (
            f"worse if recall drops by more than {self.recall_tolerance:.2f} on a class with"
            f" ≥ {self.min_boxes} boxes or over all classes, false alarms rise by more than"
            f" {self.false_alarm_tolerance}, or the suite's F1 drops by more than"
            f" {self.f1_tolerance:.2f}"
        )


class Verdict(BaseModel):
    verdict: Literal["better", "same", "worse"]
    reasons: list[str]
    rule: str


def judge(
    candidate: ModelScore,
    current: ModelScore,
    rule: VerdictRule,
    suites: tuple[SuiteScore, SuiteScore] | None = None,
) -> Verdict:
    """The candidate against the current model, with every reason that decided it."""
    worse: list[str] = []
    better: list[str] = []
    for name, now in candidate.classes.items():
        before = current.classes.get(name, ClassScore())
        if now.boxes < rule.min_boxes or now.recall is None or before.recall is None:
            continue
        change = now.recall - before.recall
        line = f"{name} recall {before.recall:.2f} → {now.recall:.2f} ({now.boxes} boxes)"
        if change < -rule.recall_tolerance - EPSILON:
            worse.append(line)
        elif change > rule.recall_tolerance + EPSILON:
            better.append(line)
    boxes = sum(c.boxes for c in candidate.classes.values())
    if boxes >= rule.min_boxes and candidate.recall is not None and current.recall is not None:
        line = f"recall over all classes {current.recall:.2f} → {candidate.recall:.2f}"
        if candidate.recall < current.recall - rule.recall_tolerance - EPSILON:
            worse.append(line)
        elif candidate.recall > current.recall + rule.recall_tolerance + EPSILON and not better:
            better.append(line)
    alarms = f"false alarms {current.false_alarms} → {candidate.false_alarms}"
    if candidate.false_alarms - current.false_alarms > rule.false_alarm_tolerance:
        worse.append(alarms)
    elif candidate.false_alarms < current.false_alarms:
        better.append(alarms)
    if suites is not None:
        new, old = suites
        line = f"suite F1 {old.f1:.2f} → {new.f1:.2f}"
        if new.f1 < old.f1 - rule.f1_tolerance - EPSILON:
            worse.append(line)
        elif new.f1 > old.f1 + rule.f1_tolerance + EPSILON:
            better.append(line)
    verdict = "worse" if worse else "better" if better else "same"
    return Verdict(verdict=verdict, reasons=worse or better, rule=rule.describe())
