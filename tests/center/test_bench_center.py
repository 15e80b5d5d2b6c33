"""The command-center benchmark (benchmarks/center.py): its data generator on its own, and
the whole benchmark run tiny against a private PostgreSQL, a real uvicorn and SSE clients."""

from __future__ import annotations

import itertools
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from citywatch.config import CitywatchConfig
from citywatch.workorder.lifecycle import ALLOWED_FROM, Action

REPO = Path(__file__).resolve().parents[2]
TINY = ["--work-orders", "500", "--alerts", "5000", "--clients", "5", "--rate", "20",
        "--seconds", "3", "--rounds", "10", "--warmup", "2"]  # fmt: skip
EVENT_ACTION = {"filed": Action.FILE, "dispatched": Action.DISPATCH, "signed": Action.SIGN,
                "returned": Action.RETURN, "extended": Action.EXTEND, "started": Action.START,
                "resolved": Action.RESOLVE, "verified": Action.VERIFY, "rework": Action.VERIFY,
                "closed": Action.CLOSE, "false_positive": Action.MARK_FALSE_POSITIVE,
                "reopened": Action.REOPEN, "escalated": Action.ESCALATE}  # fmt: skip


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    import benchmarks.center

    return benchmarks.center


@pytest.fixture(scope="module")
def data() -> ModuleType:
    import benchmarks.center_data

    return benchmarks.center_data


def test_alert_counts_sum_to_the_total_with_at_least_one_each(data: ModuleType) -> None:
    """Every order gets at least one alert; the counts add up to exactly the total asked."""
    counts = data.alert_counts(random.Random(1), 1000, 10_000)
    assert len(counts) == 1000
    assert sum(counts) == 10_000
    assert min(counts) >= 1
    assert max(counts) > 50  # a long tail: some incidents report for hours


def test_simulated_orders_follow_the_state_machine_up_to_now(
    data: ModuleType, demo_config: CitywatchConfig
) -> None:
    """Every generated timeline is a chain of allowed actions, in time order, none after now."""
    now = datetime.now(UTC)
    sim = data.OrderSimulator(demo_config, now)
    rng = random.Random(3)
    states = set()
    for n in range(400):
        opened = now - timedelta(days=90) * rng.random()
        order, device, _, _ = sim.play(rng, f"wo-{n}", opened)
        events = order.events
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert all(a.time <= b.time for a, b in itertools.pairwise(events))
        assert events[-1].time <= now
        for event in events[1:]:
            assert event.from_state in ALLOWED_FROM[EVENT_ACTION[event.event]], event
        assert device.kind in data.DEVICES_FOR_KIND[order.kind]
        states.add(order.state.value)
    assert {"closed", "false_positive"} <= states
    assert states & {"dispatched", "signed", "in_progress"}  # some stay open


@pytest.fixture(scope="module")
def results(bench: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench-center") / "center.json"
    bench.main([*TINY, "--out", str(out)])
    loaded: dict[str, Any] = json.loads(out.read_text())
    return loaded


@pytest.mark.integration
def test_tiny_run_fills_the_database_as_asked(results: dict[str, Any]) -> None:
    """The generator writes the orders and alerts asked for, links every alert, and leaves
    most orders closed with some open and overdue."""
    data = results["data"]
    assert data["rows"]["work_orders"] == 500
    assert data["rows"]["alerts"] == data["rows"]["links"] == 5000
    assert data["rows"]["events"] > 500 * 4
    assert data["by_state"]["closed"] > 250
    assert 0 < data["overdue"] <= data["open"] < 100
    assert data["foreign_keys_ok"] is True


@pytest.mark.integration
def test_tiny_run_times_every_list_query_against_the_baseline(results: dict[str, Any]) -> None:
    """Each list query answered 200 with rows, and is reported with its ratio to GET /me."""
    listing = results["list"]
    assert listing["available"] is True
    assert listing["baseline"]["ms"]["n"] == 10
    assert {"no filter", "open=true", "overdue=true", "page 2 (cursor)"} <= set(listing["queries"])
    for name, query in listing["queries"].items():
        assert query["errors"] == {}, name
        assert query["ms"]["n"] == 10, name
        assert query["ms"]["p50"] <= query["ms"]["p95"] <= query["ms"]["p99"], name
        assert query["p95_over_baseline_p95"] > 0, name
    rows = {name: q["rows"] for name, q in listing["queries"].items()}
    assert rows["no filter"] == rows["page 2 (cursor)"] == 50
    assert rows["open=true"] > 0 and rows["overdue=true"] > 0
    assert listing["detail"]["errors"] == {}


@pytest.mark.integration
def test_tiny_run_delivers_every_event_to_every_client_once_in_order(
    results: dict[str, Any],
) -> None:
    """Every SSE client received each committed event exactly once, in feed order."""
    feed = results["feed"]
    assert feed["writer"]["events"] == 60
    assert feed["clients"] == feed["clients_complete"] == 5
    assert feed["every_client_every_event_once_in_order"] is True
    assert feed["duplicates"] == feed["missing"] == feed["out_of_order"] == 0
    assert feed["latency_ms"]["n"] == 5 * 60
    assert feed["payloads_checked"] == 5 and feed["client_errors"] == []
    assert results["processes"]["server"] != results["processes"]["benchmark"]
