"""MODEL_CARD.md of a fine-tuned model version, generated from its ``model.json``.

The card is what an operator reads before pointing a camera at the weights: what the model
was trained on (dataset and its content hash, parent weights), how it did on the dataset's
validation split, the back-test against the model it would replace, where it was rolled
out, and its limits. Sections are regenerated; notes written by hand from
``## Known weaknesses`` on survive (as for the bundled model's card).
"""

from __future__ import annotations

from pathlib import Path

from citywatch.models.model_registry import ModelRecord
from citywatch.models.train_street import KEPT_FROM, kept_notes

__all__ = ["BACKTEST_HEADING", "render_card", "set_card_section", "write_card"]

BACKTEST_HEADING = "## Back-test"


def _table(rows: dict[str, float]) -> str:
    return "\n".join(f"| {name} | {value:.3f} |" for name, value in rows.items()) or "| — | — |"


def render_card(record: ModelRecord) -> str:
    """The generated part of the card (without back-test results and hand-written notes)."""
    dataset = record.dataset
    data_line = (
        f"`{dataset.path}` (content hash `{dataset.content_hash or 'none: no manifest.json'}`)"
        if dataset is not None
        else "the rendered synthetic street scenes (`models/street_dataset.py`)"
    )
    counts = (
        ", ".join(f"{key} {value}" for key, value in dataset.counts.items())
        if dataset is not None and dataset.counts
        else ""
    )
    parent = (
        f"`{record.parent.path}` (sha256 `{record.parent.sha256[:16]}…`)"
        if record.parent is not None
        else "random initialisation"
    )
    settings = ", ".join(f"{key} {value}" for key, value in record.settings.items())
    files = "\n".join(
        f"- `{ref.path}` ({kind}, sha256 `{ref.sha256[:16]}…`)"
        for kind, ref in record.files.items()
    )
    rollouts = "\n".join(
        f"- {r.created:%Y-%m-%d %H:%M} UTC {r.action} by {r.by} to {sorted(r.cameras)} in"
        f" `{r.config}`{' — FORCED past the back-test' if r.forced else ''}"
        for r in record.rollouts
    )
    host = record.host
    return f"""# {record.name} v{record.version}

**What it is.** A YOLO detector of the classes {", ".join(record.names)},
{"fine-tuned" if record.recipe == "fine-tune" else "trained"} from {parent}, input size
{record.imgsz}. Trained {record.created:%Y-%m-%d %H:%M} UTC on
{host.get("device", "?")} ({host.get("host", "?")}, torch {host.get("torch", "?")},
ultralytics {host.get("ultralytics", "?")}) in {record.train_s / 60:.1f} min.

## Data
{data_line}{f": {counts}" if counts else ""}.
Confirmed alerts are its boxes; false positives are hard negatives (images without boxes of
that class).

## Training
{settings}

## Evaluation on the dataset's validation split (imgsz {record.imgsz})
| metric | value |
|---|---|
{_table(record.metrics)}

| class | AP50 |
|---|---|
{_table(record.per_class_map50)}

{BACKTEST_HEADING}
Not run yet: `citywatch model backtest {record.name}-v{record.version} --data DATA_YAML`.

## Rollouts
{rollouts or "None yet."}

## Limits
The figures are on the validation split of the verdicts it was trained with: cameras,
seasons and light the officers have not judged are not in them. A class with few boxes has
a recall that moves by whole boxes. The back-test compares it with the model it would
replace on the same images through the gateway's detector backend; roll out only on a
verdict that is not worse (`citywatch model rollout`).

## Files
{files}
- `model.json` — this card's figures, machine-readable.
"""


def set_card_section(path: Path, heading: str, body: str) -> None:
    """Replace the section under ``heading`` (up to the next ``## ``) with ``body``, or add
    it before the hand-written notes; works on any card, the bundled recipe's included."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    section = f"{heading}\n{body.rstrip()}\n\n"
    start = text.find(f"\n{heading}\n")
    if start >= 0:
        end = text.find("\n## ", start + len(heading) + 2)
        text = text[: start + 1] + section + (text[end + 1 :] if end >= 0 else "")
    else:
        at = text.find(KEPT_FROM)
        at = at + 1 if at >= 0 else len(text)
        text = (
            text[:at]
            + ("\n" if text and not text[:at].endswith("\n\n") else "")
            + section
            + text[at:]
        )
    path.write_text(text, encoding="utf-8")


def write_card(directory: Path, record: ModelRecord, backtest_body: str | None = None) -> Path:
    """Write MODEL_CARD.md from ``record``, keeping hand-written notes and, unless a new one
    is given, the back-test section already there."""
    path = directory / "MODEL_CARD.md"
    previous = path.read_text(encoding="utf-8") if path.exists() else ""
    notes = kept_notes(path)
    path.write_text(render_card(record) + notes, encoding="utf-8")
    if backtest_body is None and f"\n{BACKTEST_HEADING}\n" in previous:
        start = previous.find(f"\n{BACKTEST_HEADING}\n") + len(BACKTEST_HEADING) + 2
        end = previous.find("\n## ", start)
        backtest_body = previous[start : end if end >= 0 else len(previous)]
    if backtest_body is not None:
        set_card_section(path, BACKTEST_HEADING, backtest_body)
    return path
