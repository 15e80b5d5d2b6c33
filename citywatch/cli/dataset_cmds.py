"""``citywatch model dataset``: the duty officers' verdicts and an operator's labelled frames
as a YOLO dataset (``data.yaml``, ``images/``, ``labels/``, ``manifest.json``), the input
of ``citywatch model train --data``.

Registered on ``citywatch model`` by ``model_cmds.py`` (its last lines).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from citywatch.cli.options import DEFAULT_CONFIG, ConfigOpt, DatabaseUrlOpt, DataDirOpt

if TYPE_CHECKING:
    from citywatch.models.dataset_export import DatasetPlan, NegativeMode, VerdictAlert
    from citywatch.models.dataset_files import DatasetSummary

console = Console()
err = Console(stderr=True)

MISSING_SHOWN = 10
"""Missing frames listed on the terminal (all of them are in the manifest)."""


def parse_maps(pairs: list[str]) -> dict[str, str]:
    """``--map FROM=TO`` options as a dict."""
    mapped = {}
    for pair in pairs:
        source, sep, target = pair.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise typer.BadParameter(f"{pair!r} is not ALERT_CLASS=MODEL_CLASS", param_hint="--map")
        mapped[source.strip()] = target.strip()
    return mapped


def read_verdicts(
    config: Path, data_dir: Path | None, database_url: str | None, since: str, until: str | None,
    cameras: list[str], kinds: list[str],
) -> tuple[list[VerdictAlert], dict[str, Any]]:  # fmt: skip
    """The decided camera alerts from the site's database, and how they were chosen."""
    import psycopg

    from citywatch.center.training_export import verdict_alerts
    from citywatch.cli.center_cmds import center_settings
    from citywatch.cli.truth_cmds import parse_time

    settings = center_settings(config, data_dir, database_url)
    known = {c.id for c in settings.config.devices.cameras}
    unknown = [c for c in cameras if c not in known]
    if unknown:
        raise typer.BadParameter(
            f"no camera {', '.join(unknown)} in the registry; cameras: {', '.join(sorted(known))}",
            param_hint="--camera",
        )
    start = parse_time(since, "since", settings.tz)
    end = parse_time(until, "until", settings.tz) or datetime.now(UTC)
    assert start is not None
    if start >= end:
        raise typer.BadParameter(f"--since ({start.isoformat()}) must be before --until")

    async def read() -> list[VerdictAlert]:
        async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
            return await verdict_alerts(conn, settings, since=start, until=end,
                                        cameras=cameras or None, kinds=kinds or None)  # fmt: skip

    alerts = asyncio.run(read())
    query = {"since": start.isoformat(), "until": end.isoformat(), "cameras": cameras or "all",
             "kinds": kinds or "all", "site": settings.config.site.id}  # fmt: skip
    return alerts, query


def summary_table(plan: DatasetPlan, summary: DatasetSummary) -> Table:
    table = Table(title=f"dataset {summary.out}", title_justify="left")
    table.add_column("", style="bold")
    table.add_column("count", justify="right")
    table.add_row("images (train / val)",
                  f"{summary.images.get('train', 0)} / {summary.images.get('val', 0)}")  # fmt: skip
    for name in plan.names:
        table.add_row(f"  boxes: {name}", str(summary.boxes.get(name, 0)))
    table.add_row("confirmed alerts used", str(plan.alerts_by_verdict["confirmed"]))
    table.add_row("false positives used", str(plan.alerts_by_verdict["false_positive"]))
    table.add_row("hard-negative images", str(summary.hard_negatives))
    table.add_row("labelled images", str(summary.labelled))
    if plan.negatives_left_out:
        table.add_row("false positives left out", str(plan.negatives_left_out))
    if plan.conflicts:
        table.add_row("contradicting false positives", str(len(plan.conflicts)))
    table.add_row("missing frames", str(len(summary.missing)),
                  style="yellow" if summary.missing else None)  # fmt: skip
    return table


def model_dataset(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Dataset folder (new, or one this command wrote).")
    ],
    since: Annotated[
        str,
        typer.Option(help="Orders opened from: ISO 8601 (site time if no zone) or a span, 30d."),
    ] = "30d",
    until: Annotated[str | None, typer.Option(help="Up to (exclusive); default now.")] = None,
    camera: Annotated[
        list[str] | None, typer.Option("--camera", help="Only this camera (repeatable).")
    ] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option("--kind", help="Only this alert kind, e.g. illegal_parking (repeatable)."),
    ] = None,
    labelled: Annotated[
        list[Path] | None,
        typer.Option(
            "--labelled",
            help="A folder of YOLO-labelled frames with classes.txt or data.yaml (repeatable).",
        ),
    ] = None,
    names_from: Annotated[
        Path | None,
        typer.Option(
            "--names-from",
            help="Class names and order from these weights (.onnx or .pt), the model to fine-tune; default: the classes seen, sorted.",
        ),
    ] = None,
    maps: Annotated[
        list[str] | None,
        typer.Option(
            "--map", help="ALERT_CLASS=MODEL_CLASS, undoing a camera's class_map (repeatable)."
        ),
    ] = None,
    negatives: Annotated[
        str,
        typer.Option(
            help="False positives as: crop (their region with context, default), frame (the whole frame) or none."
        ),
    ] = "crop",
    val_fraction: Annotated[
        float, typer.Option(min=0.0, max=0.9, help="Share of images in the validation split.")
    ] = 0.2,
    seed: Annotated[int, typer.Option(help="Split seed (same seed, same split).")] = 0,
    verdicts: Annotated[
        bool,
        typer.Option(
            help="Read the verdicts from the database (--no-verdicts: labelled folders only)."
        ),
    ] = True,
    config: ConfigOpt = DEFAULT_CONFIG,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Write a YOLO dataset from the verdicts on camera orders (confirmed: images with their
    boxes; false positives: hard negatives) and labelled folders, with a manifest."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from citywatch.config.model_checks import read_model_info
    from citywatch.models.dataset_export import plan_dataset
    from citywatch.models.dataset_files import write_dataset
    from citywatch.models.labelled_dir import read_labelled

    if negatives not in ("crop", "frame", "none"):
        raise typer.BadParameter(
            f"{negatives!r} is not crop, frame or none", param_hint="--negatives"
        )
    mode: NegativeMode = negatives  # type: ignore[assignment]
    if not verdicts and not labelled:
        raise typer.BadParameter("--no-verdicts needs at least one --labelled folder")
    names = read_model_info(names_from).names if names_from is not None else None
    alerts: list[VerdictAlert] = []
    sources: dict[str, Any] = {"negatives": mode, "val_fraction": val_fraction, "seed": seed}
    if verdicts:
        alerts, sources["verdicts"] = read_verdicts(
            config, data_dir, database_url, since, until, camera or [], kind or []
        )
    images = [image for folder in labelled or [] for image in read_labelled(folder)]
    sources["labelled"] = [str(folder.resolve()) for folder in labelled or []]
    if names_from is not None:
        sources["names_from"] = str(names_from.resolve())
    plan = plan_dataset(alerts, images, names=names, class_map=parse_maps(maps or []),
                        negatives=mode, val_fraction=val_fraction, seed=seed)  # fmt: skip
    bar = Progress("copying images", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=err, transient=True)  # fmt: skip
    with bar:
        task = bar.add_task("copy", total=len(plan.images))
        summary = write_dataset(plan, out, sources=sources,
                                progress=lambda done, _: bar.update(task, completed=done))  # fmt: skip
    console.print(summary_table(plan, summary))
    for item in summary.missing[:MISSING_SHOWN]:
        err.print(f"[yellow]![/] missing frame: alert {item.alert_id} (order"
                  f" {item.order_number or item.order_id}, {item.verdict}): {item.reason}",
                  highlight=False, soft_wrap=True)  # fmt: skip
    if len(summary.missing) > MISSING_SHOWN:
        err.print(f"[yellow]![/] … and {len(summary.missing) - MISSING_SHOWN} more (manifest.json)")
    if not plan.images:
        err.print("[yellow]![/] the dataset has no images: no decided alert with a frame was found")
    console.print(f"[green]✓[/] {out / 'data.yaml'} (content {summary.content_sha256[:12]}…)",
                  highlight=False)  # fmt: skip
