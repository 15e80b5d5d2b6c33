"""Verdicts feed the back-test, end to end: a camera's recorded alerts become a work order the
duty officers confirm (and another they dismiss as a false positive); the center exports the
camera's truth file (API and CLI), and ``edge replay --truth`` of the same recording scores
it: the confirmed episode found, the false positive only a note."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from citywatch.cli.main import app
from citywatch.config import load_config
from citywatch.contracts import decode
from citywatch.edge.camera.evaluation.detection_file import write_detections
from citywatch.edge.camera.evaluation.scenario_suite import suite_cases, truth_detections
from citywatch.edge.camera.evaluation.truth_file import read_truth
from tests.center.conftest import auth
from tests.center.seed import act_on, insert_alert, seed_order
from tests.conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SUITE = REPO / "configs" / "scenario-suite.yaml"
START = "2026-05-12T10:00:00+08:00"
CAMERA = "cam-renmin-101"
runner = CliRunner()


def replay(rows: Path, out: Path, *extra: str) -> dict:  # type: ignore[type-arg]
    """`edge replay` of the parked-car recording; the report when --truth is given."""
    report = out.with_suffix(".report.json")
    result = runner.invoke(app, [
        "edge", "replay", "--config", str(SUITE), "--camera", "cam-parked-car",
        "--detections", str(rows), "--start", START, "--out", str(out), "--report", str(report),
        *extra,
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    return json.loads(report.read_text()) if report.exists() else {}


def test_confirmed_and_dismissed_orders_export_as_truth_that_replay_scores(
    client, db, center_settings, center_db: str, stack, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Confirmed parked car → one truth line replay finds (tp 1, fp 0); a dismissed vendor →
    a note; the API and the CLI give the same file."""
    case = next(c for c in suite_cases(load_config(SUITE)) if c.scenario.name == "parked-car")
    rows = tmp_path / "parked-car.det.csv"
    write_detections(rows, truth_detections(case.scenario, case.camera.source.detect_fps))
    recorded = tmp_path / "recorded.jsonl"
    replay(rows, recorded)
    alerts = [decode(line) for line in recorded.read_bytes().splitlines()]
    assert alerts[0].phase.value == "start" and alerts[0].dwell_s

    config = center_settings.config
    opened = alerts[0].event_time
    confirmed = seed_order(db, config, kind="illegal_parking", device_id=CAMERA, alerts=0,
                           opened_at=opened)  # fmt: skip
    for alert in alerts:
        insert_alert(db, alert_id=alert.id, device_id=CAMERA, device_kind="camera",
                     kind=alert.kind.value, when=alert.event_time, phase=alert.phase.value,
                     attributes=alert.stored_attributes())  # fmt: skip
        db.execute("INSERT INTO work_order_alerts (work_order_id, alert_id) VALUES (%s, %s)",
                   (confirmed.id, alert.id))  # fmt: skip
    db.commit()
    later = opened + timedelta(minutes=5)
    act_on(db, confirmed, "dispatch", time=later, department=confirmed.department)
    act_on(db, confirmed, "sign", time=later + timedelta(minutes=1))
    act_on(db, confirmed, "resolve", time=later + timedelta(minutes=9), note="car towed")
    dismissed = seed_order(db, config, kind="street_vending", device_id=CAMERA,
                           opened_at=opened + timedelta(minutes=2))  # fmt: skip
    act_on(db, dismissed, "mark_false_positive", time=later, reason="a parked bicycle")
    seed_order(db, config, kind="illegal_parking", device_id=CAMERA, opened_at=later)  # open

    window = {"since": (opened - timedelta(hours=1)).isoformat(),
              "until": (opened + timedelta(hours=1)).isoformat()}  # fmt: skip
    response = client.get(f"/api/v1/cameras/{CAMERA}/truth", params=window, headers=auth("viewer"))
    assert response.status_code == 200, response.text
    assert response.headers["x-truth-events"] == "1"
    assert response.headers["x-truth-false-positives"] == "1"
    exported = tmp_path / "exported.truth.jsonl"
    exported.write_text(response.text)
    [event] = read_truth(exported)
    assert event.kind.value == "illegal_parking" and event.expected_delay_s == alerts[0].dwell_s
    assert (
        "false positive: street_vending at" in response.text and "a parked bicycle" in response.text
    )

    scored = replay(rows, tmp_path / "again.jsonl", "--truth", str(exported),
                    "--min-recall", "1", "--min-precision", "1")  # fmt: skip
    assert (scored["total"]["tp"], scored["total"]["fp"], scored["total"]["fn"]) == (1, 0, 0)

    by_cli = tmp_path / "cli.truth.jsonl"
    result = runner.invoke(app, [
        "center", "export-truth", "--camera", CAMERA, "--since", window["since"],
        "--until", window["until"], "--out", str(by_cli), "--data-dir", str(stack.data_dir),
        "--database-url", center_db,
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert by_cli.read_text() == response.text
    assert client.get("/api/v1/cameras/nope/truth", headers=auth("viewer")).status_code == 404
