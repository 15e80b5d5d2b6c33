"""The progress bar of long counted work (benchmarks, data generation): what it is doing,
a bar, done of total and the time so far."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

__all__ = ["counted_progress"]


def counted_progress(console: Console | None = None) -> Progress:
    """A :class:`~rich.progress.Progress` for tasks of known size (use as a context manager)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
