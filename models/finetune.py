"""Fine-tune a trained YOLO (the operator's own or the bundled one) on a YOLO dataset, such as
the one ``citywatch model dataset`` writes from the duty officers' verdicts.

The result is a new model version (``<name>-vN``): ``model.pt``, its dynamic ONNX export,
``model.json`` (parent weights and dataset by content, settings, metrics, host) and
MODEL_CARD.md. Runs on the CPU, or on a GPU when torch sees one; never downloads anything
(``YOLO_OFFLINE=1``, ``plots=False``: no fonts, no hub, no update check).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from citywatch.models.model_card import write_card
from citywatch.models.model_registry import (
    FileRef,
    ModelRecord,
    RegistryError,
    dataset_ref,
    host_info,
    now,
    sha256_file,
    write_record,
)
from citywatch.models.train_street import Progress, report_batches, validate

os.environ.setdefault("YOLO_OFFLINE", "1")

__all__ = ["FineTuneSettings", "auto_device", "fine_tune", "read_data_names"]

WEIGHTS = "model"
"""Stem of a fine-tuned version's weights: ``model.pt`` and ``model.onnx``."""


@dataclass(frozen=True)
class FineTuneSettings:
    """How a model is fine-tuned (recorded in its model.json and card)."""

    epochs: int = 10
    imgsz: int = 320
    batch: int = 16
    seed: int = 0
    workers: int = 2
    lr0: float = 0.001
    freeze: int = 0
    """Leading layers kept fixed (0: all train); freezing the backbone (e.g. 10) keeps a
    COCO model's features when the verdicts are few."""
    patience: int = 100
    device: str = "auto"


def auto_device(asked: str = "auto") -> str:
    """``asked``, or for "auto" the first GPU when torch sees one, else the CPU."""
    if asked != "auto":
        return asked
    import torch

    return "0" if torch.cuda.is_available() else "cpu"


def read_data_names(data_yaml: Path) -> list[str]:
    """The class names of a YOLO ``data.yaml`` (a list or an index → name mapping)."""
    from ruamel.yaml import YAML

    try:
        data = YAML(typ="safe").load(data_yaml.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RegistryError(f"cannot read the dataset's {data_yaml}: {exc.strerror}") from None
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, dict):
        return [str(names[key]) for key in sorted(names)]
    if isinstance(names, list):
        return [str(name) for name in names]
    raise RegistryError(f"{data_yaml} has no names: list the class names under `names:`")


def fine_tune(
    data_yaml: Path,
    parent: Path,
    out_dir: Path,
    name: str,
    version: int,
    settings: FineTuneSettings = FineTuneSettings(),
    work_dir: Path = Path(".cache/fine-tune"),
    progress: Progress | None = None,
) -> tuple[ModelRecord, Path]:
    """Train ``parent`` further on ``data_yaml``; write the version into ``out_dir``.

    Returns the record and the card's path. A dataset whose class names differ from the
    parent's is refused unless the parent is to be re-headed on purpose: ultralytics would
    silently replace the detection head and the cameras' class maps would no longer fit.
    """
    import torch
    from ultralytics import YOLO

    from citywatch.config.model_checks import read_model_info

    logging.getLogger("ultralytics").setLevel(logging.ERROR)
    if not parent.is_file() or parent.suffix.lower() != ".pt":
        raise RegistryError(
            f"--from {parent}: fine-tuning starts from PyTorch weights (.pt), e.g."
            " models/street/citywatch-street.pt or your own runs/detect/train/weights/best.pt"
        )
    data_names = read_data_names(data_yaml)
    parent_names = list(read_model_info(parent).names)
    if data_names != parent_names:
        raise RegistryError(
            f"the dataset's classes {data_names} differ from the model's {parent_names}:"
            " write the dataset with the model's class names (in the model's order)"
        )
    device = auto_device(settings.device)
    if device == "cpu":
        torch.set_num_threads(max(1, os.cpu_count() or 1))
    model = YOLO(str(parent), task="detect")
    if progress is not None:
        report_batches(model, settings.epochs, progress)
    run_dir = work_dir.resolve() / "runs"
    started = time.perf_counter()
    model.train(
        data=str(data_yaml.resolve()),
        imgsz=settings.imgsz,
        epochs=settings.epochs,
        batch=settings.batch,
        device=device,
        workers=settings.workers,
        seed=settings.seed,
        lr0=settings.lr0,
        freeze=settings.freeze or None,
        patience=settings.patience,
        deterministic=False,
        amp=device != "cpu",
        plots=False,
        val=False,
        project=str(run_dir),
        name=out_dir.name,
        exist_ok=True,
        verbose=False,
    )
    train_s = time.perf_counter() - started
    trainer: Any = model.trainer
    best = Path(trainer.best if Path(trainer.best).exists() else trainer.last)

    out_dir.mkdir(parents=True, exist_ok=True)
    pt = out_dir / f"{WEIGHTS}.pt"
    shutil.copyfile(best, pt)
    exported = YOLO(str(pt), task="detect").export(
        format="onnx", imgsz=settings.imgsz, dynamic=True, simplify=False, opset=17, verbose=False
    )
    onnx = out_dir / f"{WEIGHTS}.onnx"
    if Path(exported).resolve() != onnx.resolve():
        shutil.move(exported, onnx)
    metrics, per_class = validate(pt, data_yaml, settings.imgsz, "cpu")
    record = ModelRecord(
        name=name,
        version=version,
        created=now(),
        files={
            kind: FileRef(path=path.name, sha256=sha256_file(path))
            for kind, path in (("pt", pt), ("onnx", onnx))
        },
        names=parent_names,
        imgsz=settings.imgsz,
        parent=FileRef(path=str(parent.resolve()), sha256=sha256_file(parent)),
        dataset=dataset_ref(data_yaml),
        settings={**asdict(settings), "device": device},
        metrics=metrics,
        per_class_map50=per_class,
        train_s=train_s,
        host=host_info(device),
    )
    write_record(out_dir, record)
    return record, write_card(out_dir, record)
