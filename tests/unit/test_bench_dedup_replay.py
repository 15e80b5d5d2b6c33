"""The dedup replay benchmark's recordings hold what it claims (issue 18's findings).

Replayed with today's code in-process, the storm recording (late backlogs, a twin sensor
flooding 75 minutes later) is one work order per flooded spot, and the street recording
files one vending case per evening, linked as recurrences.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from benchmarks.dedup_replay import CONFIG, REPO, storm_recording, street_recording
from citywatch.config import load_config
from citywatch.contracts import AlertKind
from citywatch.stream.replay import replay

pytestmark = pytest.mark.slow


def orders_by_kind(recording_path: Path, out: Path) -> Counter[str]:
    replay(load_config(REPO / CONFIG), recording_path, out)
    return Counter(json.loads(line)["kind"] for line in out.read_text().splitlines())


def test_the_storm_recording_is_one_work_order_per_flooded_spot(tmp_path: Path) -> None:
    """Backlogs up to 2 h late and a twin flooding 75 min later still give one order each."""
    recording = storm_recording(timedelta(minutes=15), "storm")
    late = [a for arrived, a in recording.arrivals if arrived - a.event_time > timedelta(minutes=5)]
    assert late, "the recording has a gateway backlog"
    orders = orders_by_kind(recording.write(tmp_path), tmp_path / "orders.jsonl")
    assert orders == {"waterlogging": recording.problems[AlertKind.WATERLOGGING]}


def test_the_street_recording_files_one_vending_case_per_evening(tmp_path: Path) -> None:
    """Eight vendors on three evenings are 24 cases (new_linked), whatever the cars do."""
    recording = street_recording(cars=4, vendors=8, seed=7)
    orders = orders_by_kind(recording.write(tmp_path), tmp_path / "orders.jsonl")
    assert orders["street_vending"] == 24
