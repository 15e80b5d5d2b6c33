"""Writes a :class:`~citywatch.models.dataset_export.DatasetPlan` as a standard ultralytics
YOLO dataset, the format ``citywatch model train --data`` and any YOLO trainer read::

    OUT/data.yaml              path, train, val, names (the model's class order)
    OUT/images/{train,val}/    frames as the camera encoded them; negative crops as PNG
    OUT/labels/{train,val}/    one ``class cx cy w h`` line per box (0–1); empty: background
    OUT/manifest.json          counts, sources, missing frames, every image's origin, and the
                               dataset's content hash (a trained model's card cites it)

Frames are copied byte for byte and checked against the SHA-256 their alert announced (a
frame changed since is listed as missing, not trained on). The content hash covers the
names and every image and label file (path and SHA-256), not the time or the folder, so the
same verdicts export to the same hash.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from citywatch.models.dataset_export import DatasetError, DatasetPlan, Missing, PlannedImage
from citywatch.models.yolo_labels import NormBox, label_line, within_region

__all__ = ["MANIFEST_FORMAT", "DatasetSummary", "crop_labels", "write_dataset"]

MANIFEST_FORMAT = "citywatch-yolo-dataset/1"
"""``format`` of the manifest: how a rerun knows the folder is one it may replace."""


@dataclass
class DatasetSummary:
    out: Path
    content_sha256: str
    images: dict[str, int]
    """Images per split."""
    boxes: dict[str, int]
    """Boxes per class name (both splits)."""
    hard_negatives: int
    """Images that teach what is not an object (crops or frames of false positives)."""
    labelled: int
    missing: list[Missing] = field(default_factory=list)


def crop_labels(
    boxes: list[tuple[int, NormBox]], region: NormBox, width: int, height: int
) -> tuple[tuple[int, int, int, int], list[tuple[int, NormBox]]]:
    """The pixel rectangle (left, top, right, bottom) cut for ``region`` of a ``width`` ×
    ``height`` frame, and ``boxes`` in that crop's 0–1 coordinates (slivers dropped)."""
    eps = 1e-6  # 0.1 + 0.2 is 0.30000000000000004: not a pixel more
    left, top = math.floor(region.x1 * width + eps), math.floor(region.y1 * height + eps)
    right = max(left + 1, min(width, math.ceil(region.x2 * width - eps)))
    bottom = max(top + 1, min(height, math.ceil(region.y2 * height - eps)))
    actual = NormBox(left / width, top / height, right / width, bottom / height)
    inside = [(c, b) for c, b in ((c, within_region(b, actual)) for c, b in boxes)
              if b is not None]  # fmt: skip
    return (left, top, right, bottom), inside


def prepare_out(out: Path) -> None:
    """An empty ``out``, or one this writer filled before (its dataset files are replaced);
    anything else is refused rather than mixed with a dataset."""
    manifest = out / "manifest.json"
    if out.exists() and any(out.iterdir()):
        try:
            known = json.loads(manifest.read_text(encoding="utf-8")).get("format")
        except (OSError, ValueError, AttributeError):
            known = None
        if known != MANIFEST_FORMAT:
            raise DatasetError(
                f"{out} is not empty and holds no dataset this command wrote; choose a new"
                " --out (or empty it)"
            )
        for part in ("images", "labels"):
            shutil.rmtree(out / part, ignore_errors=True)
        for name in ("data.yaml", "manifest.json"):
            (out / name).unlink(missing_ok=True)
    for split in ("train", "val"):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)


def _image_bytes(image: PlannedImage) -> tuple[bytes, str | None]:
    """The source's bytes, and why they cannot be used (None when they can)."""
    try:
        data = image.source.read_bytes()
    except OSError as exc:
        return b"", f"cannot read {image.source}: {exc.strerror or exc}"
    if hashlib.sha256(data).hexdigest() != image.source_sha256:
        return b"", f"{image.source} changed since it was announced (SHA-256 differs)"
    return data, None


def _write_one(out: Path, image: PlannedImage, data: bytes) -> tuple[list[str], str | None]:
    """Write one image and its label file; the label lines, and why it failed (or None)."""
    boxes = image.boxes
    if image.region is not None:
        frame = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if frame is None:
            return [], f"{image.source} is not a decodable image"
        height, width = frame.shape[:2]
        (left, top, right, bottom), boxes = crop_labels(boxes, image.region, width, height)
        ok, encoded = cv2.imencode(".png", frame[top:bottom, left:right])
        if not ok:
            return [], f"cannot encode the crop of {image.source}"
        data = encoded.tobytes()
    target = out / "images" / image.split / f"{image.name}{image.suffix}"
    target.write_bytes(data)
    lines = [line for line in (label_line(c, b) for c, b in boxes) if line is not None]
    label = out / "labels" / image.split / f"{image.name}.txt"
    label.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return lines, None


def content_hash(out: Path, names: tuple[str, ...]) -> str:
    """SHA-256 over the names and every image and label file (relative path and hash)."""
    digest = hashlib.sha256(json.dumps(list(names)).encode())
    for path in sorted(p for part in ("images", "labels") for p in (out / part).rglob("*")
                       if p.is_file()):  # fmt: skip
        with path.open("rb") as file:
            file_hash = hashlib.file_digest(file, "sha256").hexdigest()
        digest.update(f"\n{path.relative_to(out).as_posix()}\t{file_hash}".encode())
    return digest.hexdigest()


def write_dataset(
    plan: DatasetPlan,
    out: Path,
    *,
    sources: Mapping[str, Any],
    progress: Callable[[int, int], None] | None = None,
) -> DatasetSummary:
    """Write ``plan`` under ``out`` (see the module docstring); ``sources`` goes into the
    manifest as it is (the query, the labelled folders, the weights the names came from)."""
    prepare_out(out)
    missing = list(plan.missing)
    written: list[dict[str, Any]] = []
    boxes: Counter[str] = Counter()
    for done, image in enumerate(plan.images, start=1):
        data, problem = _image_bytes(image)
        lines: list[str] = []
        if problem is None:
            lines, problem = _write_one(out, image, data)
        if problem is not None:
            missing += [Missing.of(alert, problem) for alert in image.alerts]
        else:
            boxes.update(plan.names[int(line.split()[0])] for line in lines)
            written.append({
                "image": f"images/{image.split}/{image.name}{image.suffix}",
                "split": image.split, "origin": image.origin, "boxes": len(lines),
                "source_sha256": image.source_sha256,
                "alerts": [a.alert_id for a in image.alerts],
                "orders": sorted({a.order_number or a.order_id for a in image.alerts}),
            })  # fmt: skip
        if progress is not None:
            progress(done, len(plan.images))
    data_yaml = {"path": str(out.resolve()), "train": "images/train", "val": "images/val",
                 "names": dict(enumerate(plan.names))}  # fmt: skip
    (out / "data.yaml").write_text(yaml.safe_dump(data_yaml, sort_keys=False), encoding="utf-8")
    summary = DatasetSummary(
        out=out, content_sha256=content_hash(out, plan.names),
        images=dict(Counter(str(w["split"]) for w in written)),
        boxes={name: boxes[name] for name in plan.names if boxes[name]},
        hard_negatives=sum(1 for w in written if w["origin"] == "hard_negative"),
        labelled=sum(1 for w in written if w["origin"] == "labelled"), missing=missing,
    )  # fmt: skip
    manifest = {
        "format": MANIFEST_FORMAT,
        "created": datetime.now(UTC).isoformat(),
        "content_sha256": summary.content_sha256,
        "names": list(plan.names),
        "counts": {
            "images": {
                "train": summary.images.get("train", 0),
                "val": summary.images.get("val", 0),
            },
            "boxes_per_class": summary.boxes,
            "alerts_per_verdict": plan.alerts_by_verdict,
            "hard_negatives": summary.hard_negatives,
            "labelled_images": summary.labelled,
            "negatives_left_out": plan.negatives_left_out,
            "missing_frames": len(missing),
            "contradictions": len(plan.conflicts),
        },
        "sources": dict(sources),
        "missing": [asdict(m) for m in missing],
        "contradictions": [asdict(c) for c in plan.conflicts],
        "images": written,
    }
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    (out / "manifest.json").write_text(text, encoding="utf-8")
    return summary
