"""The evaluation suite: every rendered scenario of configs/scenario-suite.yaml, scored.

1. With a perfect detector (the renderer's own boxes) the rules alone must be exact: this
   pins the rules and the scenario labels apart from the model.
2. Through the live agent path with the bundled model (source → detector → tracker →
   rules → publisher): event-level precision and recall ≥ 0.95 per kind, exactly one
   alert per true event, each start within 3 s of video after the dwell threshold (smoke
   through the model's weak boxes corroborated by grey change: the suite's config).
3. The same scenarios as detection files through `replay --detections`: the same figures.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from citywatch.config import CitywatchConfig, load_config
from citywatch.edge.camera.evaluation.backtest import BacktestReport, merge_reports
from citywatch.edge.camera.evaluation.backtest_report import render_suite
from citywatch.edge.camera.evaluation.scenario_suite import (
    SuiteRun,
    run_live,
    run_replay,
    suite_cases,
    truth_detections,
)
from tests.conftest import REPO

pytestmark = [pytest.mark.slow]
SUITE = REPO / "configs" / "scenario-suite.yaml"
MAX_DELAY_S = 3.0


@pytest.fixture(scope="module")
def suite() -> CitywatchConfig:
    return load_config(SUITE)


def _check(reports: list[BacktestReport], out: Path, title: str) -> BacktestReport:
    console = Console(record=True, width=140)
    console.print(title)
    merged = render_suite(reports, console)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{title}.txt").write_text(console.export_text())
    return merged


def _assert_meets_targets(merged: BacktestReport) -> None:
    for kind, s in merged.kinds.items():
        assert s.precision is not None and s.precision >= 0.95, f"{kind} precision {s}"
        assert s.recall is not None and s.recall >= 0.95, f"{kind} recall {s}"
        assert s.duplicates == 0, f"{kind}: {s.duplicates} duplicate alerts"
        assert s.delay_max_s is not None and s.delay_max_s <= MAX_DELAY_S, f"{kind} delay {s}"
    assert merged.total.tp >= 10


def test_rules_are_exact_on_perfect_detections(suite, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cases = suite_cases(suite)
    assert len(cases) >= 12
    oracle = SuiteRun()
    for case in cases:
        oracle.detections[case.camera.id] = truth_detections(
            case.scenario, case.camera.source.detect_fps
        )
    replayed = run_replay(suite, cases, oracle, tmp_path / "detections")
    merged = _check(replayed.reports, REPO / "tests" / "output" / "suite", "perfect-detector")
    _assert_meets_targets(merged)
    assert merged.total.fp == 0 and merged.total.fn == 0


@pytest.fixture(scope="module")
def model_runs(suite, tmp_path_factory):  # type: ignore[no-untyped-def]
    """The suite through the live agent with the bundled model, and its detections replayed."""
    cases = suite_cases(suite)
    work = tmp_path_factory.mktemp("suite")
    live = run_live(suite, cases, evidence_dir=work / "evidence")
    replayed = run_replay(suite, cases, live, work / "detections")
    out = REPO / "tests" / "output" / "suite"
    return (
        cases,
        live,
        replayed,
        _check(live.reports, out, "live-agent"),
        _check(replayed.reports, out, "replay-detections"),
    )


@pytest.mark.parametrize("kind", ["illegal_parking", "street_vending", "smoke"])
def test_live_agent_and_detection_replay_meet_the_targets(model_runs, kind: str) -> None:  # type: ignore[no-untyped-def]
    _, _, _, live, replayed = model_runs
    for merged in (live, replayed):
        s = merged.kinds[kind]
        assert s.precision is not None and s.precision >= 0.95, f"{kind} precision {s}"
        assert s.recall is not None and s.recall >= 0.95, f"{kind} recall {s}"
        assert s.duplicates == 0, f"{kind}: {s.duplicates} duplicate alerts"
        assert s.delay_max_s is not None and s.delay_max_s <= MAX_DELAY_S, f"{kind} delay {s}"


def test_replay_of_the_recorded_detections_reproduces_the_live_alerts(model_runs) -> None:  # type: ignore[no-untyped-def]
    cases, live_run, replayed_run, live, _ = model_runs
    for case in cases:
        live_ids = [a.id for a in live_run.alerts[case.camera.id]]
        replay_ids = [a.id for a in replayed_run.alerts[case.camera.id]]
        assert replay_ids == live_ids, case.scenario.name
    assert merge_reports(live_run.reports).total.tp == live.total.tp >= 9
