"""``citywatch model backtest | rollout | rollback``: the back half of the learning loop.

A fine-tuned version is back-tested against the model the cameras run, on the verdict
images, through the gateway's own detector backend (and, asked, on the scenario suite); a
rollout sends it to cameras only when that back-test is not worse, unless forced, and every
rollout is recorded in the version's model.json and card.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from citywatch.cli.options import load_config_or_exit
from citywatch.config.detector import DetectorConfig
from citywatch.models.backtest_scoring import SuiteScore, VerdictRule
from citywatch.models.config_weights import ConfigEditError, DetectorSlot
from citywatch.models.detector_factory import MODELS_DIR, DetectorError
from citywatch.models.model_backtest import BacktestResult, rate
from citywatch.models.model_registry import ModelRecord, RegistryError

console = Console()
err = Console(stderr=True)

Backend = Literal["onnx", "ultralytics"]
_RULE = VerdictRule()
COLOUR = {"better": "green", "same": "cyan", "worse": "red"}


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]✗[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _version(candidate: Path) -> tuple[Path, ModelRecord]:
    from citywatch.models.model_registry import read_record, record_dir_of

    try:
        directory = record_dir_of(candidate)
        return directory, read_record(directory)
    except RegistryError as exc:
        raise _fail(str(exc)) from None


def _show(result: BacktestResult) -> None:
    """The figures side by side, and the verdict line with its rule."""
    table = Table(title=f"back-test on {result.candidate_score.images} {result.split} images")
    for column in ("class", "boxes", "recall now", "recall candidate", "false alarms now",
                   "false alarms candidate"):  # fmt: skip
        table.add_column(column)
    new, old = result.candidate_score, result.current_score
    for name, c in new.classes.items():
        o = old.classes[name]
        table.add_row(name, str(c.boxes), rate(o.recall), rate(c.recall), str(o.false_alarms),
                      str(c.false_alarms))  # fmt: skip
    console.print(table)
    console.print(f"precision {rate(old.precision)} → {rate(new.precision)}", highlight=False)
    for who, suite in result.suite.items():
        console.print(
            f"suite {who}: TP {suite.tp} FP {suite.fp} FN {suite.fn} F1 {suite.f1:.2f}",
            highlight=False,
        )
    verdict = result.verdict
    colour = COLOUR[verdict.verdict]
    console.print(
        f"[bold {colour}]verdict: {verdict.verdict}[/] —"
        f" {'; '.join(verdict.reasons) or 'no change past the tolerances'}",
        highlight=False,
    )
    console.print(f"rule: {verdict.rule}", highlight=False, style="dim")


def run_and_record(
    directory: Path,
    record: ModelRecord,
    against: Path,
    data: Path,
    entry: DetectorConfig,
    rule: VerdictRule = _RULE,
    suite_config: Path | None = None,
    scenarios: list[str] | None = None,
) -> BacktestResult:
    """Back-test the version against ``against`` with ``entry``'s backend and settings,
    write backtest.json, model.json and the card; show the figures."""
    from citywatch.models.model_backtest import record_backtest, run_backtest, weights_for_backend

    weights = weights_for_backend(directory, entry.backend)
    against = weights_for_backend(against, entry.backend)
    suites: dict[str, SuiteScore] = {}
    if suite_config is not None:
        from citywatch.cli.model_suite import suite_score

        cfg = load_config_or_exit(suite_config)
        for who, path in (("candidate", weights), ("current", against)):
            console.print(f"scenario suite with the {who} model ({path.name}) …", highlight=False)
            suites[who] = suite_score(cfg, path, entry.backend, scenarios or ())
    console.print(f"back-testing {weights} against {against} on {data}", highlight=False)
    result = run_backtest(weights, against, data, entry, rule, suites or None)
    written = record_backtest(directory, result)
    _show(result)
    console.print(f"written to {written} and {directory / 'MODEL_CARD.md'}", highlight=False)
    return result


def model_backtest(
    candidate: Annotated[Path, typer.Argument(help="The version directory (or its weights).")],
    data: Annotated[Path, typer.Option(help="The dataset's data.yaml (its val split is used).")],
    against: Annotated[
        Path | None,
        typer.Option(help="The current model (default: the weights the candidate was tuned from)."),
    ] = None,
    backend: Annotated[
        Backend, typer.Option(help="The gateway backend to run both through.")
    ] = "onnx",
    imgsz: Annotated[
        int | None, typer.Option(help="Inference size (default: the candidate's).")
    ] = None,
    confidence: Annotated[float, typer.Option(help="Confidence floor, as a camera's.")] = 0.25,
    suite: Annotated[
        bool, typer.Option(help="Also score both on the scenario suite (slow).")
    ] = False,
    suite_config: Annotated[Path, typer.Option(help="The suite config.")] = Path(
        "configs/scenario-suite.yaml"
    ),
    scenario: Annotated[list[str] | None, typer.Option(help="Only these suite scenarios.")] = None,
    min_boxes: Annotated[
        int, typer.Option(help="Judge recall on classes with this many boxes.")
    ] = _RULE.min_boxes,
    recall_tolerance: Annotated[
        float, typer.Option(help="Recall drop allowed per class.")
    ] = _RULE.recall_tolerance,
    false_alarm_tolerance: Annotated[
        int, typer.Option(help="False alarms added allowed.")
    ] = _RULE.false_alarm_tolerance,
) -> None:
    """Run CANDIDATE and the current model through the same detector backend the gateways
    use on the dataset's val split: per class recall on confirmed boxes (IoU ≥ 0.5, classes
    after mapping), false alarms on images without that class, precision; with --suite the
    scenario suite's TP/FP/FN. Prints the verdict (better / same / worse) and its rule,
    writes backtest.json beside the candidate and updates its card; exit 1 when worse."""
    directory, record = _version(candidate)
    if against is None:
        if record.parent is None:
            raise _fail(f"{directory} has no parent weights: give --against CURRENT_WEIGHTS")
        against = Path(record.parent.path)
    entry = DetectorConfig(backend=backend, imgsz=imgsz or record.imgsz, confidence=confidence)
    rule = VerdictRule(min_boxes=min_boxes, recall_tolerance=recall_tolerance,
                       false_alarm_tolerance=false_alarm_tolerance)  # fmt: skip
    try:
        result = run_and_record(directory, record, against, data, entry, rule,
                                suite_config if suite else None, scenario)  # fmt: skip
    except (RegistryError, DetectorError, ValueError) as exc:
        raise _fail(str(exc)) from None
    if result.verdict.verdict == "worse":
        raise typer.Exit(1)


def model_rollout(
    candidate: Annotated[Path, typer.Argument(help="The version directory (or its weights).")],
    config: Annotated[Path, typer.Option("--config", "-c", help="The site config to rewrite.")],
    camera: Annotated[
        list[str] | None, typer.Option(help="Cameras to change (repeatable).")
    ] = None,
    gateway: Annotated[str | None, typer.Option(help="Every camera of this gateway.")] = None,
    data: Annotated[
        Path | None, typer.Option(help="Run missing back-tests on this data.yaml first.")
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Roll out even past a missing or worse back-test.")
    ] = False,
    reason: Annotated[str, typer.Option(help="Why (recorded; say it when forcing).")] = "",
    store: Annotated[
        Path,
        typer.Option(help="Where gateways read weights (copies named by version and content)."),
    ] = MODELS_DIR / "deployed",
    dry_run: Annotated[bool, typer.Option(help="Say what would change; change nothing.")] = False,
) -> None:
    """Send CANDIDATE to cameras: refused unless it has a back-test against the model each
    camera runs that is not worse (--data runs a missing one); --force goes ahead anyway and
    is recorded. Copies the weights into --store and rewrites those cameras' `weights:` in
    the config (the rest of the YAML as it was), which the gateways' hot reload picks up."""
    from citywatch.models.model_registry import read_record, sha256_file, write_record
    from citywatch.models.rollout import (
        RolloutRefused,
        apply_changes,
        config_value,
        gate_problems,
        rollout_entry,
        select_cameras,
        store_weights,
        targets_for,
    )  # fmt: skip

    directory, record = _version(candidate)
    cfg = load_config_or_exit(config)
    own = {ref.sha256 for ref in record.files.values()}
    try:
        targets = targets_for(select_cameras(cfg, camera or (), gateway), record.names)
        waiting = [t for t in targets if sha256_file(t.current) not in own]
        for t in (t for t in targets if t not in waiting):
            console.print(f"{t.slot.camera}: already runs {directory.name}", highlight=False)
        if not waiting:
            return
        problems = gate_problems(record, directory, waiting)
        if problems and data is not None:
            for current in dict.fromkeys(t.current for t in waiting):
                if record.latest_backtest(sha256_file(current)) is None:
                    entry = next(t.entry for t in waiting if t.current == current)
                    run_and_record(directory, record, current, data, entry)
            record = read_record(directory)
            problems = gate_problems(record, directory, waiting)
    except (RolloutRefused, RegistryError, DetectorError) as exc:
        raise _fail(str(exc)) from None
    if problems and not force:
        for problem in problems:
            err.print(f"[red]✗[/] {problem}", highlight=False, soft_wrap=True)
        raise _fail(f"rollout of {directory.name} refused; --force overrides (and is recorded)", 1)
    if problems:
        err.print(f"[bold red]⚠ FORCED rollout of {directory.name} past its back-test:[/]",
                  highlight=False)  # fmt: skip
        for problem in problems:
            err.print(f"[bold red]⚠[/] {problem}", highlight=False, soft_wrap=True)
    changes: dict[DetectorSlot, str] = {}
    for t in waiting:
        path = store / f"{record.name}-v{record.version}" if dry_run else store_weights(
            directory, record, t.entry.backend, store
        )  # fmt: skip
        changes[t.slot] = config_value(path)
        console.print(
            f"{t.slot.camera}: {t.written or '(bundled)'} → {changes[t.slot]}", highlight=False
        )
    if dry_run:
        console.print("dry run: nothing changed", highlight=False)
        return
    try:
        files = apply_changes(config, changes)
    except ConfigEditError as exc:
        raise _fail(str(exc)) from None
    sent = rollout_entry(config, next(iter(changes.values())), waiting, bool(problems), reason)
    record.rollouts.append(sent)
    write_record(directory, record)
    _refresh_card(directory, record)
    console.print(
        f"[green]✓[/] {directory.name} rolled out to {sorted({t.slot.camera for t in waiting})}"
        f" in {', '.join(map(str, files))}; the gateways' hot reload loads it",
        highlight=False,
    )


def _refresh_card(directory: Path, record: ModelRecord) -> None:
    """The card's rollout list (the bundled recipe's card keeps its own text around it)."""
    from citywatch.models.model_card import set_card_section, write_card

    if record.recipe == "fine-tune":
        write_card(directory, record)
        return
    lines = [f"- {r.created:%Y-%m-%d %H:%M} UTC {r.action} by {r.by} to {sorted(r.cameras)}"
             f"{' — FORCED' if r.forced else ''}" for r in record.rollouts]  # fmt: skip
    set_card_section(directory / "MODEL_CARD.md", "## Rollouts", "\n".join(lines))


def model_rollback(
    candidate: Annotated[Path, typer.Argument(help="The version that was rolled out.")],
    config: Annotated[Path, typer.Option("--config", "-c", help="The site config it went to.")],
    dry_run: Annotated[bool, typer.Option(help="Say what would change; change nothing.")] = False,
) -> None:
    """Undo CANDIDATE's last rollout to --config: each camera gets back the weights it ran
    before (the bundled model's path where it had none); recorded like a rollout."""
    from citywatch.models.model_registry import write_record
    from citywatch.models.rollout import Target, apply_changes, restore_value, rollout_entry

    directory, record = _version(candidate)
    cfg = load_config_or_exit(config)
    mine = [r for r in record.rollouts if r.config == str(config.resolve())]
    if not mine or mine[-1].action != "rollout":
        raise _fail(f"{directory.name} has no rollout to {config} left to undo")
    cameras = {c.id: c for c in cfg.devices.cameras}
    targets: list[Target] = []
    changes: dict[DetectorSlot, str] = {}
    for key, previous in mine[-1].cameras.items():
        camera_id, index = key.rsplit("/", 1)
        if camera_id not in cameras:
            raise _fail(f"camera {camera_id!r} is no longer in {config}")
        entry = cameras[camera_id].detector_list[int(index)]
        now_written = str(entry.weights) if entry.weights is not None else ""
        slot = DetectorSlot(camera_id, int(index))
        target = Target(slot, entry, entry.weights_path(MODELS_DIR), now_written)
        changes[slot] = restore_value(Target(slot, entry, target.current, previous))
        targets.append(target)
        console.print(f"{camera_id}: {now_written} → {changes[slot]}", highlight=False)
    if dry_run:
        console.print("dry run: nothing changed", highlight=False)
        return
    try:
        apply_changes(config, changes)
    except ConfigEditError as exc:
        raise _fail(str(exc)) from None
    record.rollouts.append(rollout_entry(config, "", targets, False, "rollback", "rollback"))
    write_record(directory, record)
    _refresh_card(directory, record)
    rolled = sorted({t.slot.camera for t in targets})
    console.print(f"[green]✓[/] rolled back {directory.name} on {rolled}", highlight=False)
