"""An operator's own labelled frames in YOLO format, read for the learning loop's dataset.

Two layouts are read, the ones labelling tools write: ultralytics' ``images/…/x.jpg`` with
``labels/…/x.txt``, or image and label side by side (LabelImg, CVAT's "YOLO 1.1" export).
The class names come from ``classes.txt`` (one per line) or ``data.yaml`` (``names``) at
the folder's root; each box keeps its name, file and line, so a name the dataset does not
know is reported at the line that uses it. An image without a label file is a background
image, as ultralytics treats it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml

from citywatch.models.yolo_labels import NormBox

__all__ = ["IMAGE_SUFFIXES", "LabelledBox", "LabelledError", "LabelledImage", "read_labelled"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class LabelledError(ValueError):
    """A labelled folder that cannot be read as YOLO data; the message names file and line."""


@dataclass(frozen=True)
class LabelledBox:
    name: str
    box: NormBox
    where: str
    """``file:line`` of the label line."""


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    sha256: str
    boxes: tuple[LabelledBox, ...]
    labelled: bool
    """False when the image has no label file (a background image)."""


def class_names(root: Path) -> list[str]:
    """The folder's class names by index, from ``classes.txt`` or ``data.yaml``."""
    classes = root / "classes.txt"
    if classes.is_file():
        return [line.strip() for line in classes.read_text(encoding="utf-8").splitlines()
                if line.strip()]  # fmt: skip
    data = root / "data.yaml"
    if data.is_file():
        try:
            names = (yaml.safe_load(data.read_text(encoding="utf-8")) or {}).get("names")
        except (yaml.YAMLError, AttributeError) as exc:
            raise LabelledError(f"{data}: not a YOLO data.yaml ({exc})") from None
        if isinstance(names, list):
            return [str(n) for n in names]
        if isinstance(names, dict) and all(isinstance(k, int) for k in names):
            return [str(names.get(i, f"class{i}")) for i in range(max(names, default=-1) + 1)]
        raise LabelledError(f"{data}: `names` must be a list or a map of index to name")
    raise LabelledError(
        f"{root}: no classes.txt or data.yaml names the classes of its labels; add one"
        " (classes.txt: one class name per line, in index order)"
    )


def label_file(root: Path, image: Path) -> Path:
    """Where ``image``'s labels are: ``labels/`` mirroring ``images/``, else beside it."""
    relative = image.relative_to(root)
    if relative.parts and relative.parts[0] == "images":
        return root.joinpath("labels", *relative.parts[1:]).with_suffix(".txt")
    return image.with_suffix(".txt")


def read_boxes(path: Path, names: list[str]) -> tuple[LabelledBox, ...]:
    """The boxes of one label file, checked line by line."""
    boxes = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}:{number}"
        if len(fields) != 5:
            raise LabelledError(
                f"{where}: expected `class cx cy w h` (5 values), found {len(fields)}"
                + ("; segmentation polygons are not read, export boxes" if len(fields) > 5 else "")
            )
        try:
            index = int(fields[0])
            cx, cy, w, h = (float(v) for v in fields[1:])
        except ValueError:
            raise LabelledError(f"{where}: {line.strip()!r} is not `class cx cy w h`") from None
        if not 0 <= index < len(names):
            raise LabelledError(
                f"{where}: class index {index} is not in the folder's {len(names)} class names"
            )
        if not all(0.0 <= v <= 1.0 for v in (cx, cy, w, h)) or w <= 0 or h <= 0:
            raise LabelledError(f"{where}: cx cy w h must lie in 0–1 (normalised), w and h above 0")
        boxes.append(LabelledBox(names[index], NormBox.from_cxcywh(cx, cy, w, h), where))
    return tuple(boxes)


def read_labelled(root: Path) -> list[LabelledImage]:
    """Every image under ``root`` with its boxes, in path order."""
    if not root.is_dir():
        raise LabelledError(f"{root}: not a folder of labelled images")
    names = class_names(root)
    images = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                    and p.is_file())  # fmt: skip
    if not images:
        raise LabelledError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    found = []
    for image in images:
        labels = label_file(root, image)
        boxes = read_boxes(labels, names) if labels.is_file() else ()
        with image.open("rb") as file:
            digest = hashlib.file_digest(file, "sha256").hexdigest()
        found.append(LabelledImage(image, digest, boxes, labels.is_file()))
    return found
