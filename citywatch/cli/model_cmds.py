"""``citywatch model …``: the recipe behind the bundled detector, for operators who retrain."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from citywatch.models.train_street import TrainSettings

_DEFAULTS = TrainSettings()

console = Console()
err = Console(stderr=True)
model_app = typer.Typer(
    help="Train and inspect the bundled street-scene detector.", no_args_is_help=True
)


@model_app.command("train")
def model_train(
    out: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "--out",
            help="Where the weights and model card go (default: a new models/street-vN).",
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace weights already in --output (models/street included).")
    ] = False,
    work_dir: Annotated[
        Path, typer.Option(help="Rendered dataset and training runs (not in git).")
    ] = Path(".cache/street-train"),
    n_train: Annotated[
        int, typer.Option("--train", help="Training images to render.")
    ] = _DEFAULTS.n_train,
    n_val: Annotated[
        int, typer.Option("--val", help="Validation images to render.")
    ] = _DEFAULTS.n_val,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = _DEFAULTS.epochs,
    imgsz: Annotated[
        int, typer.Option(help="Training image size (multiple of 32).")
    ] = _DEFAULTS.imgsz,
    seed: Annotated[int, typer.Option(help="Dataset and training seed.")] = _DEFAULTS.seed,
) -> None:
    """Render a synthetic street dataset, train the small YOLO on the CPU, export ONNX,
    evaluate on the rendered validation split and write MODEL_CARD.md.

    Writes to a new directory (models/street-v2, -v3, …) unless --output names one; weights
    already there are replaced only with --overwrite, so the bundled model stays as it is.
    Warns when the model's mAP50 is near zero.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from citywatch.models.train_street import (
        check_output,
        next_model_dir,
        train,
        weak_model_warning,
    )

    out = out if out is not None else next_model_dir()
    check_output(out, overwrite)
    settings = TrainSettings(n_train=n_train, n_val=n_val, epochs=epochs, imgsz=imgsz, seed=seed)
    console.print(f"training into {out}", highlight=False)
    bar = Progress(
        "training batches", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console,
    )  # fmt: skip
    task = bar.add_task("train", total=None)

    def advance(done: int, total: int) -> None:
        if not bar.live.is_started:  # after the dataset's own bar (one live display at a time)
            bar.start()
        bar.update(task, completed=done, total=total)

    try:
        result = train(out, work_dir, settings, progress=advance)
    finally:
        bar.stop()
    line = (
        f"{result.pt} and {result.onnx}: mAP50 {result.metrics['mAP50']:.3f}"
        f" (rendering {result.render_s / 60:.1f} min, training {result.train_s / 60:.1f} min)"
    )
    warning = weak_model_warning(result.metrics)
    if warning is None:
        console.print(f"[green]✓[/] {line}", highlight=False)
    else:
        console.print(f"[yellow]![/] {line}", highlight=False)
        err.print(f"[yellow]![/] {warning}", highlight=False, soft_wrap=True)
