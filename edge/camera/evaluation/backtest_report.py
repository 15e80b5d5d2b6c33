"""Back-test reports for the operator: rich tables of one run per kind, or of a suite per
scenario, and what was missed or raised in error."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from citywatch.edge.camera.evaluation.backtest import BacktestReport, KindScore, merge_reports

__all__ = ["render_report", "render_suite"]


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _delay(value: float | None) -> str:
    return "—" if value is None else f"{value:+.1f}"


def _score_row(table: Table, label: str, s: KindScore, *, style: str = "") -> None:
    table.add_row(
        label,
        str(s.tp),
        str(s.fp),
        str(s.fn),
        str(s.duplicates),
        _rate(s.precision),
        _rate(s.recall),
        _delay(s.delay_mean_s),
        _delay(s.delay_max_s),
        style=style,
    )


def _score_table(title: str, first: str) -> Table:
    table = Table(title=title)
    table.add_column(first)
    for name in ("TP", "FP", "FN", "dup", "precision", "recall", "delay mean s", "delay max s"):
        table.add_column(name, justify="right")
    return table


def render_report(report: BacktestReport, console: Console, *, details: bool = True) -> None:
    """Print the per-kind table and, with ``details``, what was missed or raised in error."""
    table = _score_table(f"Back-test {report.scenario}".strip(), "kind")
    for kind, kind_score in report.kinds.items():
        _score_row(table, kind, kind_score)
    _score_row(table, "total", report.total, style="bold")
    console.print(table)
    if not details:
        return
    for miss in report.misses:
        console.print(f"[red]missed[/red] {_where(miss.scenario)}{miss.truth}")
    for fp in report.false_positives:
        console.print(
            f"[yellow]false alarm[/yellow] {_where(fp.scenario)}{fp.episode_id}"
            f" {fp.kind.value} {escape(fp.zone or '')} at {fp.start_s:.1f}s"
        )
    for dup in report.duplicates:
        console.print(
            f"[yellow]duplicate[/yellow] {_where(dup.scenario)}{dup.episode_id} of {dup.truth}"
        )


def _where(scenario: str) -> str:
    return escape(f"[{scenario}] ") if scenario else ""


def render_suite(reports: Sequence[BacktestReport], console: Console) -> BacktestReport:
    """Print one row per scenario and the merged total; return the merged report."""
    table = _score_table("Back-test suite", "scenario")
    for report in reports:
        _score_row(table, report.scenario or "?", report.total)
    merged = merge_reports(reports)
    _score_row(table, "all", merged.total, style="bold")
    console.print(table)
    return merged
