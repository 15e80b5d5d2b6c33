"""The one harness every benchmark runs on, so that each benchmark file holds only what it
measures.

Every benchmark times its subject and a baseline in the same run (the machines are shared and
noisy; the ratio is what holds from one machine to the next), prints a rich table and writes
one JSON file under ``benchmarks/results/``. The pieces they share live here: the console and
progress bar, a timer, percentiles and ratios, a figure row with its baseline and target, the
table, and the JSON with the machine it ran on and the command that reproduces it. Benchmarks
run as modules from the repository root: ``.venv/bin/python -m benchmarks.<name>``.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import math
import os
import platform
import pstats
import shlex
import statistics
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from io import BytesIO, StringIO
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DEMO_CONFIG = REPO / "configs" / "demo-district.yaml"
console = Console(width=None if sys.stdout.isatty() else 140)
T = TypeVar("T")


def counted_progress() -> Progress:
    """A progress bar for work of known size: what it is doing, a bar, done of total, time."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console,
    )  # fmt: skip


# -- timing ---------------------------------------------------------------------------------------
def timed(run: Callable[[], T]) -> tuple[float, T]:
    """Seconds ``run`` took and what it returned; garbage from before is collected first, so
    the timed loop does not pay for it."""
    gc.collect()
    began = time.perf_counter()
    result = run()
    return time.perf_counter() - began, result


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (this one by default), every thread; 0 when
    the process is gone."""
    import psutil

    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def wall_and_cpu(run: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds) of ``run``."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    run()
    return time.perf_counter() - wall, cpu_seconds() - cpu


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100) by nearest rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def spread(values: Sequence[float], scale: float = 1.0) -> dict[str, float]:
    """n, p50/p95/p99, max and mean of ``values`` times ``scale`` (1000: seconds → ms)."""
    if not values:
        return {"n": 0} | dict.fromkeys(("p50", "p95", "p99", "max", "mean"), math.nan)
    return {
        "n": len(values),
        **{f"p{q}": percentile(values, q) * scale for q in (50, 95, 99)},
        "max": max(values) * scale,
        "mean": statistics.fmean(values) * scale,
    }


def ratio(value: float | None, baseline: float | None) -> float | None:
    """``value`` over its same-run ``baseline``; None where either is missing or zero."""
    return value / baseline if value is not None and baseline else None


@dataclass
class Figure:
    """One measured figure beside the baseline measured in the same run, and its target: a row
    of a benchmark's table and of its JSON."""

    stage: str
    measured: str
    value: float
    unit: str
    baseline: float | None = None
    target: str = ""
    passed: bool | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        return ratio(self.value, self.baseline)

    def record(self) -> dict[str, Any]:
        return asdict(self) | {"ratio": self.ratio}


def figures_table(title: str, figures: Sequence[Figure]) -> Table:
    """The figures with their baselines, ratios, targets and verdicts."""

    def amount(value: float | None) -> str:
        return fmt(value, ",.0f" if value is None or abs(value) >= 100 else ".1f")

    rows = [
        (f.stage, f.measured, f"{amount(f.value)} {f.unit}", amount(f.baseline),
         fmt(f.ratio, ".2f"), f.target, mark(f.passed))
        for f in figures
    ]  # fmt: skip
    columns = ("stage", "measured", "value", "baseline", "ratio", "target", "pass")
    return table(title, columns, rows, left=("stage", "measured", "target", "pass"))


# -- output ---------------------------------------------------------------------------------------
def fmt(value: float | None, spec: str = ".1f") -> str:
    """A number for a table cell; "–" for none or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return format(value, spec)


def mark(passed: bool | None) -> str:
    """✓, ✗ or – (no verdict) for a table cell."""
    return {True: "[green]✓[/]", False: "[red]✗[/]", None: "–"}[passed]


def table(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[str]],
    left: Collection[str] | None = None,
) -> Table:  # fmt: skip
    """A results table; the ``left`` columns (default: the first and "pass") are text, the
    others numbers, right-aligned."""
    left = {columns[0], "pass"} if left is None else left
    out = Table(title=title)
    for column in columns:
        out.add_column(column, justify="left" if column in left else "right")
    for row in rows:
        out.add_row(*row)
    return out


def profile_top(source: cProfile.Profile | Path, lines: int) -> str:
    """The functions of a cProfile run (a profiler, or its dump file) by own time."""
    text = StringIO()
    stats = pstats.Stats(
        source if isinstance(source, cProfile.Profile) else str(source), stream=text
    )
    stats.strip_dirs().sort_stats("tottime").print_stats(lines)
    return text.getvalue()


def say(text: str) -> None:
    """A line of the report, printed as it is (no markup guessing, no wrapping)."""
    console.print(text, highlight=False, soft_wrap=True)


def reproduce(module: str, argv: Sequence[str], env: str = "") -> str:
    """The command line that runs this benchmark again the same way."""
    words = shlex.join([".venv/bin/python", "-m", f"benchmarks.{module}", *argv])
    return f"{env} {words}" if env else words


def parser(doc: str, out_help: str) -> argparse.ArgumentParser:
    """An argument parser with the benchmark's docstring as help and the ``--out`` option."""
    parsed = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parsed.add_argument("--out", type=Path, default=None, help=f"results JSON ({out_help})")
    return parsed


def run_facts(benchmark: str, command: str) -> dict[str, Any]:
    """What every results file starts with: which benchmark, when, how, on what machine."""
    return {
        "benchmark": benchmark,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "reproduce": command,
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
        "load_avg_at_start": os.getloadavg(),
    }


def save(results: dict[str, Any], out: Path | None, name: str, stamped: bool = False) -> Path:
    """Write the results as JSON to ``out``, or to ``benchmarks/results/<name>.json`` (with the
    UTC time in the name when ``stamped``, so runs do not overwrite each other)."""
    stamp = f"-{datetime.now(UTC):%Y%m%dT%H%M%SZ}" if stamped else ""
    out = out or RESULTS / f"{name}{stamp}.json"
    results["load_avg_at_end"] = os.getloadavg()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    say(f"wrote {out}")
    return out


def extract_at(revision: str, into: Path, *paths: str) -> Path:
    """``paths`` of the repository as they were at git ``revision``, extracted under ``into``
    (read from git with ``git archive``; the working tree is not touched): the code a
    benchmark's "before" runs."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision, *paths], cwd=REPO, check=True,
        capture_output=True,
    ).stdout  # fmt: skip
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into
