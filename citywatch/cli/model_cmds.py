"""``citywatch model …``: the recipe behind the bundled detector, for operators who retrain."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from citywatch.models.train_street import TrainSettings

_DEFAULTS = TrainSettings()

console = Console()
model_app = typer.Typer(
    help="Train and inspect the bundled street-scene detector.", no_args_is_help=True
)


@model_app.command("train")
def model_train(
    out: Annotated[Path, typer.Option(help="Where the weights and model card go.")] = Path(
        "models/street"
    ),
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
    evaluate on the rendered validation split and write MODEL_CARD.md."""
    from citywatch.models.train_street import train

    settings = TrainSettings(n_train=n_train, n_val=n_val, epochs=epochs, imgsz=imgsz, seed=seed)
    result = train(out, work_dir, settings)
    console.print(
        f"[green]✓[/] {result.pt} and {result.onnx}: mAP50 {result.metrics['mAP50']:.3f}"
        f" (rendering {result.render_s / 60:.1f} min, training {result.train_s / 60:.1f} min)"
    )
