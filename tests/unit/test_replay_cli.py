"""`citywatch stream replay`: the operator's back-test of dedup on a recorded file."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from citywatch.contracts import Alert, DeviceRef, Location, encode

REPO = Path(__file__).resolve().parents[2]
CAMERA = DeviceRef(site="demo", kind="camera", id="cam-renmin-102")

pytestmark = pytest.mark.service  # runs the CLI in a subprocess


def test_replay_merges_thirty_reports_and_names_the_department(tmp_path: Path) -> None:
    """30 vending reports at one camera become one work order routed to urban management."""
    start = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
    lines = [
        encode(
            Alert(
                id=f"v{n}.0", episode_id=f"v{n}", seq=0, device=CAMERA, kind="street_vending",
                rule="sidewalk-vending", phase="start", event_time=start + timedelta(minutes=n),
                location=Location(zone="sidewalk"), confidence=0.7,
            )
        ).decode()
        for n in range(30)
    ]  # fmt: skip
    lines.insert(5, "this is not json")
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_text("\n".join(lines) + "\n")
    out = tmp_path / "workorders.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "citywatch.cli.main", "stream", "replay", "--config",
         str(REPO / "configs" / "demo-district.yaml"), "--alerts", str(alerts), "--out", str(out),
         "--skip-bad"],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr.count(f"{alerts}:6:") == 1, result.stderr
    orders = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(orders) == 1
    assert orders[0]["department"] == "urban-mgmt" and orders[0]["category"] == "05-01"
    assert len(orders[0]["alert_ids"]) == 30


def test_replay_checks_a_late_gateway_and_a_shuffle(tmp_path: Path) -> None:
    """--delay and --shuffle report whether that arrival order gives the same work orders."""
    start = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
    lines = [
        encode(
            Alert(
                id=f"v.{n}", episode_id="v", seq=n, device=CAMERA, kind="street_vending",
                rule="sidewalk-vending", phase="start" if n == 0 else "update",
                event_time=start + timedelta(minutes=10 * n), location=Location(zone="sidewalk"),
                confidence=0.7,
            )
        ).decode()
        for n in range(6)
    ]  # fmt: skip
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "citywatch.cli.main", "stream", "replay", "--config",
         str(REPO / "configs" / "demo-district.yaml"), "--alerts", str(alerts), "--out",
         str(tmp_path / "out.jsonl"), "--shuffle", "5", "--delay", f"{CAMERA.id}:45"],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"order check (shuffle seed 5, {CAMERA.id} 45 min late)" in result.stdout
    assert "1 work orders in event-time order, 1 in that arrival order: same" in result.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "citywatch.cli.main", "stream", "replay", "--alerts", str(alerts),
         "--out", str(tmp_path / "o.jsonl"), "--delay", "soon"],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2 and "DEVICE:MINUTES" in bad.stderr
