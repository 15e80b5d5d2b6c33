"""Back-test a candidate model against the current one on a YOLO dataset's validation split
(the duty officers' verdict images), through the detector backend the gateways run.

Both models are built with :func:`~citywatch.models.detector_factory.load_detector` from a
camera-style detector entry (backend, imgsz, confidence floor, class map), so the figures
mean what a camera would see; the scoring itself is :mod:`backtest_scoring`. The result goes
to ``backtest.json`` beside the candidate, into its ``model.json`` and its model card.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import cv2
import numpy as np
from pydantic import BaseModel, Field

from citywatch.config.detector import DetectorConfig, canonical_class
from citywatch.models.backtest_scoring import (
    ModelScore,
    SuiteScore,
    Truth,
    Verdict,
    VerdictRule,
    judge,
    score_images,
)
from citywatch.models.detector_factory import load_detector
from citywatch.models.finetune import read_data_names
from citywatch.models.model_card import BACKTEST_HEADING, set_card_section, write_card
from citywatch.models.model_registry import (
    RECORD_FILE,
    BacktestEntry,
    DatasetRef,
    FileRef,
    RegistryError,
    dataset_ref,
    now,
    read_record,
    sha256_file,
    write_record,
)

__all__ = [
    "BacktestResult",
    "labelled_images",
    "rate",
    "record_backtest",
    "result_markdown",
    "run_backtest",
    "weights_for_backend",
]

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


class BacktestResult(BaseModel):
    """``backtest.json``: both models' figures on the same images, and the verdict."""

    created: str
    candidate: FileRef
    against: FileRef
    dataset: DatasetRef
    split: str
    backend: str
    imgsz: int
    confidence: float
    classes: list[str]
    candidate_score: ModelScore
    current_score: ModelScore
    suite: dict[str, SuiteScore] = Field(default_factory=dict)
    """``candidate`` and ``current``: the scenario suite's events, when it was run."""
    verdict: Verdict
    seconds: float


def weights_for_backend(candidate: Path, backend: str) -> Path:
    """The file a backend loads for ``candidate``: a version directory's ``onnx`` or ``pt``
    weights, or the file itself (a ``.pt`` given to the onnx backend: its ``.onnx`` twin)."""
    kind = "onnx" if backend == "onnx" else "pt"
    if candidate.is_dir():
        if not (candidate / RECORD_FILE).is_file():
            raise RegistryError(f"{candidate} is a directory without {RECORD_FILE}")
        return read_record(candidate).weights(candidate, kind)
    if backend == "onnx" and candidate.suffix.lower() == ".pt":
        twin = candidate.with_suffix(".onnx")
        if not twin.is_file():
            raise RegistryError(
                f"the onnx backend needs {twin} (export {candidate.name} to ONNX), or pass"
                " --backend ultralytics"
            )
        return twin
    if not candidate.exists():
        raise RegistryError(f"model weights not found at {candidate}")
    return candidate


def _split_images(data_yaml: Path, split: str) -> list[Path]:
    from ruamel.yaml import YAML

    data = YAML(typ="safe").load(data_yaml.read_text(encoding="utf-8"))
    root = Path(data.get("path") or data_yaml.parent)
    root = root if root.is_absolute() else data_yaml.parent / root
    entries = data.get(split)
    if entries is None:
        raise RegistryError(f"{data_yaml} has no {split!r} split to back-test on")
    images: list[Path] = []
    for entry in entries if isinstance(entries, list) else [entries]:
        place = root / str(entry)
        if place.is_dir():
            images += sorted(p for p in place.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        elif place.suffix == ".txt" and place.is_file():
            lines = place.read_text(encoding="utf-8").split()
            images += [p if p.is_absolute() else root / p for p in map(Path, lines)]
        else:
            raise RegistryError(f"{data_yaml}: {split} {entry!r} is neither a folder nor a list")
    return images


def _label_file(image: Path) -> Path:
    """ultralytics' convention: the last ``images`` folder of the path becomes ``labels``."""
    parts = list(image.parts)
    at = len(parts) - 1 - parts[::-1].index("images") if "images" in parts else -1
    if at < 0:
        return image.with_suffix(".txt")
    parts[at] = "labels"
    return Path(*parts).with_suffix(".txt")


def labelled_images(
    data_yaml: Path, class_map: Mapping[str, str], split: str = "val"
) -> Iterator[tuple[np.ndarray, Truth]]:
    """Each image of the split with its confirmed boxes, classes mapped as the camera maps
    them; an image without a label file (or an empty one) is a hard negative."""
    names = [canonical_class(n, dict(class_map)) for n in read_data_names(data_yaml)]
    for path in _split_images(data_yaml, split):
        image = cv2.imread(str(path))
        if image is None:
            log.warning("back-test: cannot read %s, skipped", path)
            continue
        height, width = image.shape[:2]
        label = _label_file(path)
        rows = label.read_text(encoding="utf-8").split("\n") if label.is_file() else []
        boxes, classes = [], []
        for row in filter(None, (r.split() for r in rows)):
            cls, cx, cy, w, h = int(row[0]), *map(float, row[1:5])
            boxes.append(
                ((cx - w / 2) * width, (cy - h / 2) * height,
                 (cx + w / 2) * width, (cy + h / 2) * height)
            )  # fmt: skip
            classes.append(names[cls])
        xyxy = np.array(boxes, np.float32).reshape(-1, 4)
        yield image, Truth(xyxy, tuple(classes))


def _score(
    weights: Path, entry: DetectorConfig, data_yaml: Path, classes: list[str], split: str
) -> ModelScore:
    detector = load_detector(entry.model_copy(update={"weights": weights.resolve()}))
    pairs = (
        (truth, detector.detect(image))
        for image, truth in labelled_images(data_yaml, entry.class_map, split)
    )
    return score_images(pairs, classes)


def run_backtest(
    candidate: Path,
    against: Path,
    data_yaml: Path,
    entry: DetectorConfig,
    rule: VerdictRule | None = None,
    suite: Mapping[str, SuiteScore] | None = None,
    split: str = "val",
) -> BacktestResult:
    """Both weights files through ``entry``'s backend on the split; the verdict by ``rule``
    (with the suite's figures, ``candidate`` and ``current``, when given)."""
    started = time.perf_counter()
    classes = list(dict.fromkeys(canonical_class(n, dict(entry.class_map))
                                 for n in read_data_names(data_yaml)))  # fmt: skip
    new = _score(candidate, entry, data_yaml, classes, split)
    old = _score(against, entry, data_yaml, classes, split)
    suites = (suite["candidate"], suite["current"]) if suite else None
    return BacktestResult(
        created=now().isoformat(),
        candidate=FileRef(path=str(candidate.resolve()), sha256=sha256_file(candidate)),
        against=FileRef(path=str(against.resolve()), sha256=sha256_file(against)),
        dataset=dataset_ref(data_yaml),
        split=split,
        backend=entry.backend,
        imgsz=entry.imgsz,
        confidence=entry.confidence,
        classes=classes,
        candidate_score=new,
        current_score=old,
        suite=dict(suite or {}),
        verdict=judge(new, old, rule or VerdictRule(), suites),
        seconds=time.perf_counter() - started,
    )


def rate(value: float | None) -> str:
    """A rate for a table: two decimals, a dash where there was nothing to count."""
    return "—" if value is None else f"{value:.2f}"


def result_markdown(result: BacktestResult) -> str:
    """The card's back-test section: the table, the suite line and the verdict with its rule."""
    new, old = result.candidate_score, result.current_score
    rows = [
        f"| {name} | {c.boxes} | {rate(old.classes[name].recall)} | {rate(c.recall)}"
        f" | {old.classes[name].false_alarms} | {c.false_alarms} |"
        for name, c in new.classes.items()
    ]
    suite = result.suite
    suite_line = (
        "\nScenario suite (TP/FP/FN, F1): current"
        f" {suite['current'].tp}/{suite['current'].fp}/{suite['current'].fn}"
        f" {suite['current'].f1:.2f}, candidate"
        f" {suite['candidate'].tp}/{suite['candidate'].fp}/{suite['candidate'].fn}"
        f" {suite['candidate'].f1:.2f}.\n"
        if suite
        else ""
    )
    return f"""Against `{result.against.path}` (sha256 `{result.against.sha256[:16]}…`) on the
{result.split} split of `{result.dataset.path}` ({new.images} images, {new.negatives} without
boxes), {result.backend} backend at imgsz {result.imgsz}, confidence {result.confidence},
{result.created[:16].replace("T", " ")} UTC.

| class | boxes | recall now | recall candidate | false alarms now | false alarms candidate |
|---|---|---|---|---|---|
{chr(10).join(rows)}

Precision {rate(old.precision)} → {rate(new.precision)}; recall {rate(old.recall)} →
{rate(new.recall)}.
{suite_line}
**Verdict: {result.verdict.verdict}** ({"; ".join(result.verdict.reasons) or "no change past the tolerances"}).
Rule: {result.verdict.rule}.
"""


def record_backtest(candidate_dir: Path, result: BacktestResult) -> Path:
    """Write ``backtest.json`` beside the candidate, add the entry to its ``model.json`` and
    the section to its card; returns the JSON's path."""
    path = candidate_dir / "backtest.json"
    path.write_text(result.model_dump_json(indent=2) + "\n", encoding="utf-8")
    record = read_record(candidate_dir)
    record.backtests.append(
        BacktestEntry(
            created=now(),
            against=result.against,
            dataset=result.dataset,
            backend=result.backend,
            verdict=result.verdict.verdict,
            reasons=result.verdict.reasons,
            suite=bool(result.suite),
            file=path.name,
        )
    )
    write_record(candidate_dir, record)
    card = candidate_dir / "MODEL_CARD.md"
    if record.recipe == "fine-tune":
        write_card(candidate_dir, record, result_markdown(result))
    else:
        set_card_section(card, BACKTEST_HEADING, result_markdown(result))
    return path
