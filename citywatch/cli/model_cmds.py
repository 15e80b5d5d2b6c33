"""``citywatch model …``: the recipe behind the bundled detector, fine-tuning on the duty
officers' verdicts, model versions, back-tests and rollouts (the learning loop)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from citywatch.cli.dataset_cmds import model_dataset
from citywatch.cli.model_loop_cmds import model_backtest, model_rollback, model_rollout
from citywatch.cli.options import load_config_or_exit
from citywatch.models.detector_factory import MODELS_DIR
from citywatch.models.finetune import FineTuneSettings
from citywatch.models.train_street import TrainSettings

if TYPE_CHECKING:
    from rich.progress import Progress

_DEFAULTS = TrainSettings()
_TUNE = FineTuneSettings()

console = Console()
err = Console(stderr=True)
model_app = typer.Typer(
    help="Train, fine-tune, version, back-test and roll out detection models.",
    no_args_is_help=True,
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
    epochs: Annotated[
        int | None,
        typer.Option(
            help=f"Training epochs (default {_DEFAULTS.epochs}; fine-tuning {_TUNE.epochs})."
        ),
    ] = None,
    imgsz: Annotated[
        int | None,
        typer.Option(
            help="Training image size, a multiple of 32 (default 320; fine-tuning: the parent's)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Dataset and training seed.")] = _DEFAULTS.seed,
    data: Annotated[
        Path | None,
        typer.Option(
            help="Fine-tune on this YOLO data.yaml (e.g. from `citywatch model dataset`)."
        ),
    ] = None,
    from_weights: Annotated[
        Path | None,
        typer.Option("--from", help="The .pt to fine-tune (default: the bundled street model)."),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Version name: <name>-vN (default: the parent's name).")
    ] = None,
    registry: Annotated[
        Path | None, typer.Option(help="Where versions go (default: the repository's models/).")
    ] = None,
    device: Annotated[
        str, typer.Option(help="'auto' (a GPU when torch sees one, else the CPU), 'cpu' or '0'.")
    ] = "auto",
    batch: Annotated[int, typer.Option(help="Fine-tuning batch size.")] = _TUNE.batch,
    freeze: Annotated[
        int, typer.Option(help="Fine-tuning: leading layers kept fixed (0: none).")
    ] = 0,
) -> None:
    """Without --data: render a synthetic street dataset, train the small YOLO on the CPU,
    export ONNX, evaluate on the rendered validation split and write MODEL_CARD.md.

    With --data: fine-tune --from WEIGHTS (the bundled model by default) on that dataset, on
    a GPU when torch sees one, else on the CPU. Either way the result is a new version
    directory (<name>-vN) with model.json and MODEL_CARD.md; weights already in --output are
    replaced only with --overwrite. Warns when the model's mAP50 is near zero.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    bar = Progress(
        "training batches", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console,
    )  # fmt: skip
    task = bar.add_task("train", total=None)

    def advance(done: int, total: int) -> None:
        if not bar.live.is_started:  # after the dataset's own bar (one live display at a time)
            bar.start()
        bar.update(task, completed=done, total=total)

    if data is not None:
        tune = FineTuneSettings(
            epochs=epochs or _TUNE.epochs, imgsz=imgsz or 0, batch=batch, seed=seed,
            freeze=freeze, device=device,
        )  # fmt: skip
        try:
            _fine_tune(
                data, from_weights, name, registry, out, overwrite, work_dir, tune, bar, advance
            )
        finally:
            bar.stop()
        return
    from citywatch.models.model_registry import next_version_dir
    from citywatch.models.train_street import check_output, next_model_dir, train

    if out is None:
        out = next_version_dir(registry, "street")[0] if registry is not None else next_model_dir()
    check_output(out, overwrite)
    settings = TrainSettings(
        n_train=n_train, n_val=n_val, epochs=epochs or _DEFAULTS.epochs,
        imgsz=imgsz or _DEFAULTS.imgsz, seed=seed,
    )  # fmt: skip
    console.print(f"training into {out}", highlight=False)
    try:
        result = train(out, work_dir, settings, progress=advance)
    finally:
        bar.stop()
    _report(
        f"{result.pt} and {result.onnx}: mAP50 {result.metrics['mAP50']:.3f}"
        f" (rendering {result.render_s / 60:.1f} min, training {result.train_s / 60:.1f} min)",
        result.metrics,
    )


def _report(line: str, metrics: dict[str, float]) -> None:
    from citywatch.models.train_street import weak_model_warning

    warning = weak_model_warning(metrics)
    if warning is None:
        console.print(f"[green]✓[/] {line}", highlight=False)
    else:
        console.print(f"[yellow]![/] {line}", highlight=False)
        err.print(f"[yellow]![/] {warning}", highlight=False, soft_wrap=True)


def _fine_tune(
    data: Path,
    parent: Path | None,
    name: str | None,
    registry: Path | None,
    out: Path | None,
    overwrite: bool,
    work_dir: Path,
    settings: FineTuneSettings,
    bar: Progress,
    advance: Callable[[int, int], None],
) -> None:
    """``model train --data``: a new version fine-tuned from ``parent``."""
    from dataclasses import replace

    from citywatch.config.model_checks import read_model_info
    from citywatch.models.finetune import WEIGHTS, fine_tune
    from citywatch.models.model_registry import RECORD_FILE, next_version_dir, read_record
    from citywatch.models.train_street import STREET_DIR, WEIGHTS_STEM, check_output

    if not data.is_file():
        raise typer.BadParameter(
            f"{data} does not exist: give the dataset's data.yaml", param_hint="--data"
        )
    parent = parent if parent is not None else STREET_DIR / f"{WEIGHTS_STEM}.pt"
    if name is None:
        here = parent.parent / RECORD_FILE
        name = read_record(parent.parent).name if here.is_file() else (
            "street" if parent.parent == STREET_DIR else parent.stem
        )  # fmt: skip
    if out is None:
        out, version = next_version_dir(registry or STREET_DIR.parent, name)
    else:
        version = (
            int(out.name.rsplit("-v", 1)[1])
            if "-v" in out.name and out.name.rsplit("-v", 1)[1].isdigit()
            else 1
        )
    check_output(out, overwrite, stem=WEIGHTS)
    if not settings.imgsz:
        trained = read_model_info(parent).trained_imgsz if parent.is_file() else None
        settings = replace(settings, imgsz=trained or 320)
    console.print(f"fine-tuning {parent} on {data} into {out}", highlight=False)
    record, card = fine_tune(
        data, parent, out, name, version, settings, work_dir=work_dir, progress=advance
    )
    bar.stop()
    _report(
        f"{out} ({record.name} v{record.version}, {record.host['device']}): mAP50"
        f" {record.metrics['mAP50']:.3f}, training {record.train_s / 60:.1f} min; card {card}",
        record.metrics,
    )


@model_app.command("list")
def model_list(
    registry: Annotated[
        Path, typer.Option(help="Where the versions are (default: the repository's models/).")
    ] = MODELS_DIR,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="Show which cameras of this site config run each version."
        ),
    ] = None,
) -> None:
    """The model versions (model.json) under --registry: parent, dataset, metrics, latest
    back-test verdict and, with --config, the cameras whose detectors run each one."""
    from rich.table import Table

    from citywatch.models.model_registry import find_versions, sha256_file

    running: dict[str, list[str]] = {}
    if config is not None:
        cfg = load_config_or_exit(config)
        for camera in cfg.devices.cameras:
            for entry in camera.detector_list:
                if (
                    entry.backend != "classical"
                    and (path := entry.weights_path(MODELS_DIR)).is_file()
                ):
                    running.setdefault(sha256_file(path), []).append(camera.id)
    versions = find_versions(registry)
    if not versions:
        console.print(f"no model versions (model.json) under {registry}", highlight=False)
        return
    table = Table(title=f"model versions in {registry}")
    table.add_column("version", no_wrap=True)
    for column in ("recipe", "from", "dataset", "mAP50", "back-test", "created"):
        table.add_column(column)
    if config is not None:
        table.add_column("cameras")
    for directory, record in versions:
        last = record.backtests[-1].verdict if record.backtests else "—"
        dataset = record.dataset
        row = [
            directory.name,
            record.recipe,
            Path(record.parent.path).name if record.parent else "—",
            (dataset.content_hash or Path(dataset.path).parent.name)[:16]
            if dataset
            else "synthetic",
            f"{record.metrics.get('mAP50', float('nan')):.3f}",
            last,
            f"{record.created:%Y-%m-%d %H:%M}",
        ]
        if config is not None:
            cameras = {c for ref in record.files.values() for c in running.get(ref.sha256, [])}
            shown = sorted(cameras)
            more = f" +{len(shown) - 3} more" if len(shown) > 3 else ""
            row.append(", ".join(shown[:3]) + more if shown else "—")
        table.add_row(*row)
    console.print(table)


model_app.command("backtest")(model_backtest)
model_app.command("rollout")(model_rollout)
model_app.command("rollback")(model_rollback)
model_app.command("dataset")(model_dataset)
