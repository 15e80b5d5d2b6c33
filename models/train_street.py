"""The recipe of the bundled street model: render a training set, train a small YOLO on the
CPU, export ONNX and write the model card.

The model is a model of *synthetic* scenes (models/street_dataset.py renders them): good
for the demo, the tests and the benchmarks, not for a real street. A deployment points
``detector.weights`` at its own model; this recipe is also the template for fine-tuning one.

Everything runs offline: the architecture comes from ``citywatch-street.yaml`` next to the
weights (random init, no hub download) and ultralytics is kept from fetching fonts or
checking for updates (``YOLO_OFFLINE=1``, ``plots=False``).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from citywatch.models.model_registry import ModelRecord, write_record

os.environ.setdefault("YOLO_OFFLINE", "1")

STREET_DIR = Path(__file__).resolve().parent / "street"
ARCHITECTURE = STREET_DIR / "citywatch-street.yaml"
WEIGHTS_STEM = "citywatch-street"
WEAK_MAP50 = 0.05
"""Below this mAP50 on its validation split a trained model detects next to nothing."""

Progress = Callable[[int, int], None]
"""Told (batches done, batches in all) as training goes, for a bar with the time left."""


class OutputExists(FileExistsError):
    """Training would overwrite weights that are already there (the bundled ones, say)."""


def next_model_dir(base: Path = STREET_DIR) -> Path:
    """A new directory beside ``base`` for a training run: ``street-v2``, ``street-v3``, …

    The bundled model in ``models/street`` is what the demo, the tests and the benchmarks
    use: a retraining writes next to it, never over it, unless asked to.
    """
    version = 2
    while (base.parent / f"{base.name}-v{version}").exists():
        version += 1
    return base.parent / f"{base.name}-v{version}"


def check_output(out_dir: Path, overwrite: bool, stem: str = WEIGHTS_STEM) -> None:
    """Refuse to write over existing weights unless ``overwrite``."""
    taken = [p for p in (out_dir / f"{stem}.pt", out_dir / f"{stem}.onnx") if p.exists()]
    if taken and not overwrite:
        raise OutputExists(
            f"{out_dir} already holds {taken[0].name}: pass --overwrite to replace it, or"
            " choose another --output (without --output a new models/street-vN is used)"
        )


def weak_model_warning(metrics: dict[str, float]) -> str | None:
    """What to tell the operator when the trained model detects next to nothing."""
    map50 = metrics.get("mAP50", 0.0)
    if map50 >= WEAK_MAP50:
        return None
    return (
        f"mAP50 {map50:.3f} on the validation split: this model detects next to nothing;"
        " train longer (--epochs), on more images (--train), or at a larger --imgsz"
        " before pointing a camera's detector.weights at it"
    )


@dataclass(frozen=True)
class TrainSettings:
    """What the bundled weights were trained with (recorded in the model card)."""

    n_train: int = 1600
    n_val: int = 300
    render_size: tuple[int, int] = (640, 384)
    imgsz: int = 320
    epochs: int = 19
    batch: int = 16
    seed: int = 20261123
    workers: int = 2
    mosaic: float = 1.0
    close_mosaic: int = 3
    optimizer: str = "AdamW"
    lr0: float = 0.002
    momentum: float = 0.9
    """AdamW, beta1 0.9, no bias warm-up (ultralytics' ``optimizer=auto`` choice for a run
    this short, written out so the recipe does not depend on it) at twice the lr it picks:
    19 epochs from random initialisation leave no time for a cautious start."""
    patience: int = 100


@dataclass
class TrainResult:
    settings: TrainSettings
    pt: Path
    onnx: Path
    train_s: float
    render_s: float
    metrics: dict[str, float] = field(default_factory=dict)
    per_class_map50: dict[str, float] = field(default_factory=dict)


def train(
    out_dir: Path = STREET_DIR,
    work_dir: Path = Path(".cache/street-train"),
    settings: TrainSettings = TrainSettings(),
    progress: Progress | None = None,
) -> TrainResult:
    """Render, train, export and evaluate; write ``citywatch-street.{pt,onnx}`` and the card."""
    import torch
    from ultralytics import YOLO

    from citywatch.models.street_dataset import DATASET_VERSION, render_dataset

    # ultralytics logs its settings, the layer table and a bar per epoch at INFO (above INFO
    # its bars are off too), and warns of the architecture file's missing scale. Our own
    # progress (``progress``) says how far it is.
    logging.getLogger("ultralytics").setLevel(logging.ERROR)

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    work_dir = work_dir.resolve()
    data_dir = work_dir / (
        f"data-v{DATASET_VERSION}-{settings.seed}-{settings.n_train}-{settings.n_val}"
    )
    started = time.perf_counter()
    data_yaml = data_dir / "data.yaml"
    if not data_yaml.exists():
        data_yaml = render_dataset(
            data_dir, settings.n_train, settings.n_val, settings.render_size, settings.seed
        )
    render_s = time.perf_counter() - started

    model = YOLO(str(ARCHITECTURE), task="detect")
    if progress is not None:
        report_batches(model, settings.epochs, progress)
    started = time.perf_counter()
    model.train(
        data=str(data_yaml),
        imgsz=settings.imgsz,
        epochs=settings.epochs,
        batch=settings.batch,
        device="cpu",
        workers=settings.workers,
        seed=settings.seed,
        deterministic=False,
        pretrained=False,
        amp=False,
        plots=False,
        val=False,
        mosaic=settings.mosaic,
        close_mosaic=settings.close_mosaic,
        optimizer=settings.optimizer,
        lr0=settings.lr0,
        momentum=settings.momentum,
        warmup_bias_lr=0.0,
        patience=settings.patience,
        project=str(work_dir / "runs"),
        name="street",
        exist_ok=True,
        verbose=False,
    )
    train_s = time.perf_counter() - started
    trainer = model.trainer
    assert trainer is not None
    best = Path(trainer.best if Path(trainer.best).exists() else trainer.last)

    out_dir.mkdir(parents=True, exist_ok=True)
    pt = out_dir / f"{WEIGHTS_STEM}.pt"
    shutil.copyfile(best, pt)
    exported = YOLO(str(pt), task="detect").export(
        format="onnx", imgsz=settings.imgsz, dynamic=True, simplify=False, opset=17
    )
    onnx = out_dir / f"{WEIGHTS_STEM}.onnx"
    if Path(exported).resolve() != onnx.resolve():
        shutil.move(exported, onnx)

    result = TrainResult(settings, pt, onnx, train_s, render_s)
    evaluate(result, data_yaml)
    write_card(result, out_dir / "MODEL_CARD.md")
    write_record(out_dir, synthetic_record(result, out_dir))
    return result


def synthetic_record(result: TrainResult, out_dir: Path) -> ModelRecord:
    """``model.json`` for a run of this recipe: version N of a ``street-vN`` directory (1 for
    the bundled ``models/street``), trained from random initialisation."""
    from citywatch.config.model_checks import read_model_info
    from citywatch.models.model_registry import FileRef, host_info, sha256_file

    match = re.fullmatch(r".*-v(\d+)", out_dir.name)
    settings = asdict(result.settings)
    settings["render_size"] = list(result.settings.render_size)
    return ModelRecord(
        name=out_dir.name.rsplit("-v", 1)[0] if match else out_dir.name,
        version=int(match.group(1)) if match else 1,
        created=datetime.now(UTC),
        files={
            kind: FileRef(path=path.name, sha256=sha256_file(path))
            for kind, path in (("pt", result.pt), ("onnx", result.onnx))
        },
        names=list(read_model_info(result.pt).names),
        imgsz=result.settings.imgsz,
        recipe="synthetic",
        settings=settings,
        metrics=result.metrics,
        per_class_map50=result.per_class_map50,
        train_s=result.train_s,
        host=host_info("cpu"),
    )


def report_batches(model: Any, epochs: int, progress: Progress) -> None:
    """Call ``progress`` after every training batch (ultralytics' own bars are off)."""
    done = 0

    def batch_end(trainer: Any) -> None:
        nonlocal done
        done += 1
        progress(done, epochs * len(trainer.train_loader))

    model.add_callback("on_train_batch_end", batch_end)


def evaluate(result: TrainResult, data_yaml: Path) -> None:
    """mAP on the rendered validation split (its own seed stream, never trained on)."""
    result.metrics, result.per_class_map50 = validate(result.pt, data_yaml, result.settings.imgsz)


def validate(
    pt: Path, data_yaml: Path, imgsz: int, device: str = "cpu"
) -> tuple[dict[str, float], dict[str, float]]:
    """mAP50, mAP50-95, precision and recall on ``data_yaml``'s val split, and AP50 by class."""
    from ultralytics import YOLO

    metrics = YOLO(str(pt), task="detect").val(
        data=str(data_yaml), imgsz=imgsz, device=device, plots=False, verbose=False, split="val"
    )
    box = metrics.box
    overall = {
        "mAP50": float(box.map50),
        "mAP50-95": float(box.map),
        "precision": float(box.mp),
        "recall": float(box.mr),
    }
    names: dict[int, str] = metrics.names
    per_class = {
        names[int(c)]: float(ap) for c, ap in zip(box.ap_class_index, box.ap50, strict=True)
    }
    return overall, per_class


def write_card(result: TrainResult, path: Path) -> None:
    """The model card: what the weights are, how they were made, how well they do."""
    s = result.settings
    rows = "\n".join(f"| {name} | {value:.3f} |" for name, value in result.per_class_map50.items())
    card = f"""# citywatch-street — a YOLO model of synthetic street scenes

**What it is.** A small YOLOv8-layout detector ({_params(result.pt)}: narrow at the large
feature maps, wider at strides 16–32; see `{ARCHITECTURE.name}`) trained from random
initialisation on street-camera scenes rendered by `hardware/camera/street/scene.py`. It exists
so that the demo, the tests and the benchmarks run offline with a real detector. It has
never seen a real camera image: **a real deployment points `detector.weights` at its own
model** (any weights ultralytics loads; class names mapped with `detector.class_map`).

Classes: {", ".join(result.per_class_map50) or "car, truck, bus, person, stall, smoke"}.

## Data
{s.n_train} training and {s.n_val} validation images rendered by
`models/street_dataset.py` at {s.render_size[0]}×{s.render_size[1]}, seed {s.seed}
(validation from its own seed stream): random mixes of parked and moving vehicles,
pedestrians, vendor stalls, growing semi-transparent smoke and smoke-like distractors,
day/dusk/night lighting, sensor noise and camera shake. The evaluation scenarios in
`configs/scenarios/` use other seeds.

## Training
`citywatch model train` (this recipe, `models/train_street.py`): imgsz {s.imgsz},
{s.epochs} epochs, batch {s.batch}, {s.optimizer} lr0 {s.lr0}, mosaic {s.mosaic} (off for the last
{s.close_mosaic} epochs), CPU only ({platform.processor() or platform.machine()},
{os.cpu_count()} cores): rendering {result.render_s / 60:.1f} min, training
{result.train_s / 60:.1f} min.

## Evaluation on the rendered validation set (imgsz {s.imgsz})
| metric | value |
|---|---|
| mAP50 | {result.metrics.get("mAP50", float("nan")):.3f} |
| mAP50-95 | {result.metrics.get("mAP50-95", float("nan")):.3f} |
| precision | {result.metrics.get("precision", float("nan")):.3f} |
| recall | {result.metrics.get("recall", float("nan")):.3f} |

| class | AP50 |
|---|---|
{rows}

## Files
- `{result.pt.name}` — PyTorch weights for the `ultralytics` backend.
- `{result.onnx.name}` — ONNX (opset 17, dynamic input size) for the `onnx` backend
  (onnxruntime + numpy, no torch).
- `{ARCHITECTURE.name}` — the architecture the recipe trains.
- `train-result.json` — the figures above, machine-readable.

Trained {datetime.now(UTC):%Y-%m-%d}.
"""
    path.write_text(card + kept_notes(path), encoding="utf-8")
    summary: dict[str, Any] = asdict(result)
    summary["pt"], summary["onnx"] = result.pt.name, result.onnx.name
    (path.parent / "train-result.json").write_text(json.dumps(summary, indent=2) + "\n")


KEPT_FROM = "\n## Known weaknesses"
"""The hand-written part of a card, from this heading on, survives a retraining."""


def kept_notes(path: Path) -> str:
    """What people wrote below the generated card (weaknesses, history), to be kept."""
    if not path.exists():
        return ""
    text = path.read_text(encoding="utf-8")
    at = text.find(KEPT_FROM)
    return text[at:] if at >= 0 else ""


def _params(pt: Path) -> str:
    import torch

    checkpoint = torch.load(pt, map_location="cpu", weights_only=False)
    model = checkpoint.get("ema") or checkpoint.get("model")
    count = sum(p.numel() for p in model.parameters()) if model is not None else 0
    return f"{count / 1e6:.2f} M parameters"
