"""Offline replay: recorded alert messages in, work orders with their alert ids out."""

from __future__ import annotations

import json
import random
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citywatch.config import CitywatchConfig
from citywatch.contracts import (
    Alert,
    AlertKind,
    DeviceKind,
    DeviceRef,
    Location,
    Phase,
    Telemetry,
    encode,
)
from citywatch.stream.replay import ReorderBuffer, main, replay

T0 = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]
DEMO_CONFIG = REPO / "configs" / "demo-district.yaml"
CAMERA = ("camera", "cam-renmin-101")  # configured at 31.4309, 119.4815
DOCK = ("dock", "dock-chengxi-01")
UNDERPASS = ("sensor", "wl-underpass-01")  # 31.4312, 119.4821
HEBIN = ("sensor", "wl-hebin-02")  # 31.4287, 119.4869, about 600 m away


def message(
    alert_id: str,
    episode: str,
    phase: Phase,
    at_s: float,
    device: tuple[str, str],
    kind: AlertKind,
    point: tuple[float, float] | None = None,
) -> Alert:
    """An alert ``at_s`` seconds after T0, with a lat/lon only when ``point`` is given."""
    location = Location(zone="z", lat=point[0], lon=point[1]) if point else Location(zone="z")
    return Alert(
        id=alert_id,
        episode_id=episode,
        seq=0,
        device=DeviceRef(site="demo", kind=DeviceKind(device[0]), id=device[1]),
        kind=kind,
        rule="rule",
        phase=phase,
        event_time=T0 + timedelta(seconds=at_s),
        location=location,
        confidence=0.9,
    )


def day_of_alerts() -> list[Alert]:
    """The scenario, in event-time order (all event times distinct)."""
    S, U, E = Phase.START, Phase.UPDATE, Phase.END
    smoke, parking, water = AlertKind.SMOKE, AlertKind.ILLEGAL_PARKING, AlertKind.WATERLOGGING
    near_camera = (31.4318, 119.4815)  # the drone's shot position, 100 m north of the camera
    return [
        message("cam.smoke.0", "cam.smoke", S, 0, CAMERA, smoke),
        message("cam.smoke.1", "cam.smoke", U, 60, CAMERA, smoke),
        message("uav.smoke.0", "uav.smoke", S, 120, DOCK, smoke, near_camera),
        message("uav.smoke.1", "uav.smoke", E, 240, DOCK, smoke, near_camera),
        message("wl1.0", "wl1", S, 300, UNDERPASS, water, (31.4312, 119.4821)),
        message("cam.smoke.2", "cam.smoke", E, 360, CAMERA, smoke),
        message("wl2.0", "wl2", S, 480, HEBIN, water, (31.4287, 119.4869)),
        message("p1.0", "p1", S, 600, CAMERA, parking),
        message("ghost.0", "ghost", S, 720, ("camera", "cam-ghost"), parking),
        message("wl1.1", "wl1", U, 900, UNDERPASS, water, (31.4312, 119.4821)),
        message("p1.1", "p1", E, 1200, CAMERA, parking),
        message("wl1.2", "wl1", E, 2400, UNDERPASS, water, (31.4312, 119.4821)),
        message("p2.0", "p2", S, 7200, CAMERA, parking),  # 复发 after the close at 30 min
    ]


def arrival_order(alerts: list[Alert], seed: int, max_delay_s: float = 290) -> list[Alert]:
    """The alerts as they might arrive: each delayed by less than the 5 min lateness."""
    rng = random.Random(seed)
    delayed = [(a.event_time.timestamp() + rng.uniform(0, max_delay_s), a) for a in alerts]
    return [a for _, a in sorted(delayed, key=lambda pair: pair[0])]


def write_jsonl(path: Path, lines: Sequence[bytes | str]) -> Path:
    with path.open("wb") as out:
        for line in lines:
            out.write((line.encode() if isinstance(line, str) else line) + b"\n")
    return path


def read_orders(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def recorded(tmp_path: Path) -> Path:
    """The scenario as recorded: shuffled within the lateness, a resend and three bad lines."""
    alerts = arrival_order(day_of_alerts(), seed=7)
    lines: list[bytes | str] = [encode(a) for a in alerts]
    lines.insert(3, encode(alerts[0]))  # a resend (line 4)
    lines.insert(5, "{not json")  # line 6
    telemetry = Telemetry(id="t1", device=DeviceRef(site="demo", kind="sensor", id="wl-hebin-02"), event_time=T0, metrics={"depth_cm": 1.0})  # fmt: skip
    lines.insert(8, encode(telemetry))  # line 9: valid, but not an alert
    lines.insert(10, encode(alerts[1]).replace(b'"confidence":0.9', b'"confidence":2.0'))
    lines.insert(11, "")  # blank lines are skipped, not counted
    return write_jsonl(tmp_path / "alerts.jsonl", lines)


def test_replay_turns_a_day_of_alerts_into_work_orders(
    demo_config: CitywatchConfig, recorded: Path, tmp_path: Path
) -> None:
    """Smoke from a camera and a drone is one order; parking recurs as a new order linked to
    the first (the demo's new_linked policy for parking); water is per spot."""
    summary = replay(demo_config, recorded, tmp_path / "out" / "orders.jsonl")
    orders = {o["incident_id"]: o for o in read_orders(summary.out_path)}
    assert set(orders) == {
        "inc.cam.smoke.0", "inc.wl1.0", "inc.wl2.0", "inc.p1.0", "inc.p2.0", "inc.ghost.0"
    }  # fmt: skip

    smoke = orders["inc.cam.smoke.0"]
    assert smoke["kind"] == "smoke" and smoke["state"] == "closed"
    assert sorted(smoke["alert_ids"]) == sorted(
        ["cam.smoke.0", "cam.smoke.1", "cam.smoke.2", "uav.smoke.0", "uav.smoke.1"]
    )
    assert smoke["sources"] == ["demo/camera/cam-renmin-101", "demo/dock/dock-chengxi-01"]
    assert smoke["position"] == {"lat": 31.4309, "lon": 119.4815}  # the camera's configured one
    assert smoke["closed_at"] == (T0 + timedelta(minutes=6 + 15)).isoformat()

    parking = orders["inc.p1.0"]
    assert parking["alert_ids"] == ["p1.0", "p1.1"]
    assert parking["reopen_count"] == 0 and parking["state"] == "closed"
    again = orders["inc.p2.0"]
    assert again["recurrence_of"] == "inc.p1.0" and again["state"] == "open"

    assert orders["inc.wl1.0"]["alert_ids"] == ["wl1.0", "wl1.1", "wl1.2"]
    assert orders["inc.wl2.0"]["state"] == "closed"  # aged out: no end ever came
    assert orders["inc.ghost.0"]["position"] is None  # unknown device: deduped per device

    assert summary.alerts == 14 and summary.duplicates == 1
    assert summary.unpositioned == 1
    assert (summary.incidents, summary.open, summary.closed, summary.reopened) == (6, 1, 5, 0)
    assert (summary.linked, summary.folded) == (1, 0)


def test_replay_counts_bad_lines_with_their_numbers_and_goes_on(
    demo_config: CitywatchConfig, recorded: Path, tmp_path: Path
) -> None:
    """A malformed line, a non-alert and an invalid alert are reported, never fatal."""
    summary = replay(demo_config, recorded, tmp_path / "orders.jsonl")
    assert [b.line for b in summary.bad_lines] == [6, 9, 11]
    assert [b.error.split(":")[0] for b in summary.bad_lines] == [
        "MalformedMessage",
        "WrongMessageType",
        "MalformedMessage",
    ]
    assert "confidence" in summary.bad_lines[2].error
    assert summary.lines == 17


def test_replaying_a_file_twice_gives_the_same_work_orders(
    demo_config: CitywatchConfig, recorded: Path, tmp_path: Path
) -> None:
    """Ids and contents are derived from the data, so replays are identical."""
    first = replay(demo_config, recorded, tmp_path / "a.jsonl").out_path.read_bytes()
    second = replay(demo_config, recorded, tmp_path / "b.jsonl").out_path.read_bytes()
    assert first == second


@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_any_arrival_order_within_the_lateness_gives_the_same_work_orders(
    demo_config: CitywatchConfig, seed: int
) -> None:
    """Shuffling arrivals by less than the lateness changes nothing in the output."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        in_order = [encode(a) for a in day_of_alerts()]
        shuffled = [encode(a) for a in arrival_order(day_of_alerts(), seed)]
        expected = replay(demo_config, write_jsonl(base / "a.jsonl", in_order), base / "a.out")
        got = replay(demo_config, write_jsonl(base / "b.jsonl", shuffled), base / "b.out")
        assert got.out_path.read_bytes() == expected.out_path.read_bytes()


_random_alerts = st.lists(
    st.tuples(
        st.integers(0, 30),  # episode
        st.sampled_from(list(Phase)),
        st.integers(0, 36_000),  # seconds after T0
        st.sampled_from([CAMERA, UNDERPASS, HEBIN, ("camera", "cam-ghost")]),
        st.sampled_from([AlertKind.ILLEGAL_PARKING, AlertKind.WATERLOGGING]),
    ),
    max_size=40,
)


@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@given(_random_alerts)
def test_replaying_any_file_twice_gives_the_same_ids(
    demo_config: CitywatchConfig,
    rows: list[tuple[int, Phase, int, tuple[str, str], AlertKind]],
) -> None:
    """Same file, same work orders, and every alert id in exactly one of them."""
    alerts = [
        message(f"a{n}", f"e{ep}", phase, at, device, kind)
        for n, (ep, phase, at, device, kind) in enumerate(rows)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        path = write_jsonl(base / "in.jsonl", [encode(a) for a in alerts])
        first = replay(demo_config, path, base / "1.out").out_path
        second = replay(demo_config, path, base / "2.out").out_path
        assert first.read_bytes() == second.read_bytes()
        ids = [aid for order in read_orders(first) for aid in order["alert_ids"]]
        assert sorted(ids) == sorted(a.id for a in alerts)


def test_an_empty_file_gives_no_work_orders(demo_config: CitywatchConfig, tmp_path: Path) -> None:
    """Nothing in, an empty file out, and a summary of zeros."""
    summary = replay(demo_config, write_jsonl(tmp_path / "in.jsonl", []), tmp_path / "o.jsonl")
    assert summary.out_path.read_text() == ""
    assert (summary.lines, summary.alerts, summary.incidents) == (0, 0, 0)


def test_the_reorder_buffer_releases_in_event_time_once_the_lateness_passed() -> None:
    """Held until the stream is ``lateness`` past them; a too-late arrival is counted."""
    buffer = ReorderBuffer(timedelta(minutes=5))
    b = message("b", "b", Phase.START, 120, CAMERA, AlertKind.SMOKE)
    a = message("a", "a", Phase.START, 60, CAMERA, AlertKind.SMOKE)
    c = message("c", "c", Phase.START, 500, CAMERA, AlertKind.SMOKE)
    late = message("late", "late", Phase.START, 10, CAMERA, AlertKind.SMOKE)
    assert buffer.push(b) == [] and buffer.push(a) == []
    assert buffer.push(c) == [a, b]
    assert buffer.push(late) == [late] and buffer.late == 1
    assert buffer.drain() == [c]


def test_main_runs_a_replay_and_prints_a_summary(
    recorded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command-line entry reports bad lines as file:line and the totals."""
    out = tmp_path / "orders.jsonl"
    code = main(["--config", str(DEMO_CONFIG), "--alerts", str(recorded), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0
    assert f"{recorded}:6: MalformedMessage" in captured.err
    assert "14 alerts (1 duplicates, 0 late, 3 bad lines) → 6 work orders" in captured.out
    assert len(read_orders(out)) == 6


def test_main_refuses_a_missing_alerts_file(tmp_path: Path) -> None:
    """A wrong path is an operator error with exit status 2, not a traceback."""
    code = main(
        ["--config", str(DEMO_CONFIG), "--alerts", str(tmp_path / "nope"), "--out", "x.jsonl"]
    )
    assert code == 2
