"""Back-test scoring: alert episodes against labelled truth, per kind and merged."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console

from citywatch.contracts.messages import Alert, AlertKind, DeviceKind, DeviceRef, Location, Phase
from citywatch.edge.camera.evaluation.backtest import (
    BacktestReport,
    episodes_of,
    merge_reports,
    score,
)
from citywatch.edge.camera.evaluation.backtest_report import render_report, render_suite
from citywatch.edge.camera.evaluation.truth_file import (
    TruthEvent,
    TruthFileError,
    parse_truth,
    read_truth,
)

T0 = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
CAM = DeviceRef(site="s1", kind=DeviceKind.CAMERA, id="cam1")
PARK = AlertKind.ILLEGAL_PARKING
SMOKE = AlertKind.SMOKE


def alert(
    episode: str,
    at_s: float,
    kind: AlertKind = PARK,
    *,
    zone: str = "curb",
    phase: Phase = Phase.START,
    anchor: tuple[float, float] | None = None,
    seq: int = 0,
) -> Alert:
    attributes: dict[str, str | int | float | bool] = {}
    if anchor is not None:
        attributes = {"anchor_x": anchor[0], "anchor_y": anchor[1]}
    return Alert(
        id=f"{episode}-{seq}",
        episode_id=episode,
        seq=seq,
        device=CAM,
        kind=kind,
        rule="r",
        phase=phase,
        event_time=T0 + timedelta(seconds=at_s),
        location=Location(zone=zone),
        confidence=0.9,
        attributes=attributes,
    )


def truth(start_s: float, kind: AlertKind = PARK, **extra: object) -> TruthEvent:
    return TruthEvent.model_validate({"kind": kind, "zone": "curb", "start_s": start_s, **extra})


def run(alerts: list[Alert], events: list[TruthEvent], **kwargs: object) -> BacktestReport:
    return score(alerts, events, video_start=T0, **kwargs)


def test_alert_within_window_is_a_true_positive_with_delay_after_latency() -> None:
    """Delay is measured from truth start plus the kind's expected latency."""
    report = run([alert("e1", 190)], [truth(0)], latency_s={PARK: 180})
    s = report.kinds["illegal_parking"]
    assert (s.tp, s.fp, s.fn, s.duplicates) == (1, 0, 0, 0)
    assert s.precision == 1.0 and s.recall == 1.0
    assert s.delay_mean_s == pytest.approx(10) and s.delay_max_s == pytest.approx(10)


def test_truth_expected_delay_overrides_the_kind_latency() -> None:
    """A truth event's own expected_delay_s wins over the per-kind mapping."""
    report = run([alert("e1", 190)], [truth(0, expected_delay_s=185)], latency_s={PARK: 180})
    assert report.total.delay_mean_s == pytest.approx(5)


def test_only_start_messages_count_and_resent_starts_count_once() -> None:
    """Updates and ends are not detections; a resent start is the same episode."""
    alerts = [
        alert("e1", 10),
        alert("e1", 10),
        alert("e1", 20, phase=Phase.UPDATE, seq=1),
        alert("e1", 30, phase=Phase.END, seq=2),
        alert("e2", 40, phase=Phase.UPDATE, seq=1),
    ]
    assert [e.episode_id for e in episodes_of(alerts, T0)] == ["e1"]
    assert run(alerts, [truth(0)]).total.tp == 1


def test_second_episode_for_one_event_is_a_duplicate_against_precision() -> None:
    """Two episodes for one parked car: one match, one duplicate, precision 0.5."""
    report = run([alert("e1", 10), alert("e2", 50)], [truth(0)])
    s = report.total
    assert (s.tp, s.fp, s.duplicates) == (1, 0, 1)
    assert s.precision == 0.5
    assert [d.episode_id for d in report.duplicates] == ["e2"]


def test_alert_outside_any_event_is_a_false_positive_and_event_a_miss() -> None:
    """Too early, after end + slack, or wrong kind: false positive; the event is missed."""
    events = [truth(100, end_s=200)]
    alerts = [alert("early", 50), alert("late", 211), alert("smoke", 150, SMOKE)]
    report = run(alerts, events, slack_s=10)
    assert report.kinds["illegal_parking"].fp == 2
    assert report.kinds["illegal_parking"].fn == 1
    assert report.kinds["smoke"].fp == 1
    assert report.total.recall == 0.0
    assert {fp.episode_id for fp in report.false_positives} == {"early", "late", "smoke"}


@pytest.mark.parametrize(
    ("at_s", "end_s", "matched"),
    [
        (99.9, None, False),
        (100, None, True),
        (10_000, None, True),  # an open event matches any later start
        (209.9, 200, True),  # within end + slack
        (210.1, 200, False),
    ],
)
def test_time_window_is_truth_start_to_end_plus_slack(
    at_s: float, end_s: float | None, matched: bool
) -> None:
    """The alert must start in [start, end + slack]; without end the window is open."""
    report = run([alert("e1", at_s)], [truth(100, end_s=end_s)], slack_s=10)
    assert report.total.tp == int(matched)


@pytest.mark.parametrize(
    ("alert_zone", "truth_zone", "matched"),
    [("curb", "curb", True), ("curb", "bus_lane", False), ("curb", None, True)],
)
def test_zones_must_agree_when_both_are_given(
    alert_zone: str, truth_zone: str | None, matched: bool
) -> None:
    """A truth event without a zone matches any zone."""
    event = TruthEvent(kind=PARK, zone=truth_zone, start_s=0)
    assert run([alert("e1", 5, zone=alert_zone)], [event]).total.tp == int(matched)


@pytest.mark.parametrize(
    ("anchor", "matched"),
    [((0.5, 0.5), True), ((0.55, 0.55), True), ((0.6, 0.5), False), (None, True)],
)
def test_positions_must_lie_within_tolerance_when_both_are_given(
    anchor: tuple[float, float] | None, matched: bool
) -> None:
    """Distance between the alert anchor and the truth position is at most the tolerance."""
    event = truth(0, position=[0.5, 0.5])
    report = run([alert("e1", 5, anchor=anchor)], [event], position_tolerance=0.08)
    assert report.total.tp == int(matched)


def test_two_cars_in_one_zone_are_told_apart_by_position() -> None:
    """Two simultaneous events in a zone each get the episode at their position."""
    events = [truth(0, position=[0.2, 0.8]), truth(0, position=[0.7, 0.8])]
    alerts = [alert("right", 5, anchor=(0.7, 0.8)), alert("left", 6, anchor=(0.2, 0.8))]
    report = run(alerts, events)
    assert report.total.tp == 2
    assert {(m.episode_id, m.truth_index) for m in report.matches} == {("left", 0), ("right", 1)}


def test_matching_finds_the_largest_one_to_one_assignment() -> None:
    """An episode fitting two events yields the nearer one if another episode needs it."""
    events = [truth(0, end_s=100), truth(50, end_s=100)]
    # "a" fits both (nearest to event 2); "b" fits only event 1 (too early for event 2).
    alerts = [alert("b", 10), alert("a", 55)]
    report = run(alerts, events, slack_s=0)
    assert (report.total.tp, report.total.duplicates, report.total.fn) == (2, 0, 0)


def test_early_allowance_accepts_a_start_slightly_before_the_label() -> None:
    """Labelled starts are imprecise; early_s widens the window backwards."""
    assert run([alert("e1", 99)], [truth(100)]).total.tp == 0
    assert run([alert("e1", 99)], [truth(100)], early_s=2).total.tp == 1


def test_wall_time_truth_is_placed_on_the_video_clock() -> None:
    """``start``/``end`` in ISO wall time are converted with the video start time."""
    (event,) = parse_truth(
        [
            json.dumps(
                {
                    "kind": "smoke",
                    "start": "2025-06-01T08:01:00Z",
                    "end": "2025-06-01T10:01:30+02:00",
                }
            )
        ]
    )
    assert event.span_s(T0) == (60.0, 90.0)
    assert run([alert("e1", 70, SMOKE)], [event], latency_s={SMOKE: 6}).total.delay_max_s == 4


def test_empty_run_with_no_truth_passes_and_has_undefined_rates() -> None:
    """Nothing expected and nothing raised: no rate to fail."""
    report = run([], [])
    assert report.total.precision is None and report.total.recall is None
    assert report.passes(0.9, 0.9)


def test_passes_checks_every_kind_and_names_failures() -> None:
    """A good total does not hide a kind that falls short."""
    events = [truth(i * 100, end_s=i * 100 + 10) for i in range(9)] + [truth(0, SMOKE)]
    alerts = [alert(f"p{i}", i * 100 + 5) for i in range(9)]
    report = run(alerts, events)
    assert report.total.recall == 0.9
    assert not report.passes(0.8, 0.8)
    assert report.failures(0.8, 0.8) == ["smoke: recall 0.00 < 0.8"]


def test_report_json_carries_counts_and_rates() -> None:
    """to_json has the derived precision, recall and mean delay for each kind."""
    data = json.loads(run([alert("e1", 5)], [truth(0)]).to_json())
    kind = data["kinds"]["illegal_parking"]
    assert kind["tp"] == 1 and kind["precision"] == 1.0 and kind["delay_mean_s"] == 5.0
    assert data["total"]["recall"] == 1.0


def test_merge_sums_counts_and_recomputes_rates() -> None:
    """Suite precision is over all episodes, not a mean of scenario rates."""
    one = run([alert("e1", 5), alert("e2", 8)], [truth(0)], scenario="a")  # 1 TP + 1 dup
    two = run([alert("e3", 5), alert("x", 500, SMOKE)], [truth(0)], scenario="b")  # TP + FP
    three = run([], [truth(0)], scenario="c")  # a miss
    merged = merge_reports([one, two, three])
    park = merged.kinds["illegal_parking"]
    assert (park.tp, park.duplicates, park.fn) == (2, 1, 1)
    assert merged.total.precision == pytest.approx(2 / 4)
    assert merged.total.recall == pytest.approx(2 / 3)
    assert merged.total.delay_max_s == 5
    assert {m.scenario for m in merged.misses} == {"c"}


def test_renderers_print_tables_with_details() -> None:
    """The rich tables name kinds, scenarios and what went wrong."""
    report = run([alert("e1", 5), alert("x", 500, SMOKE)], [truth(0), truth(0, SMOKE, end_s=1)])
    out = StringIO()
    console = Console(file=out, width=140, color_system=None)
    render_report(report, console)
    render_suite([report.model_copy(update={"scenario": "rainy[1]"})], console)
    text = out.getvalue()
    assert "illegal_parking" in text and "total" in text
    assert "missed" in text and "false alarm x" in text
    assert "rainy[1]" in text


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"kind": "smoke"}', "exactly one of start_s"),
        ('{"kind": "smoke", "start_s": 1, "start": "2025-06-01T08:00:00Z"}', "exactly one"),
        ('{"kind": "fire", "start_s": 1}', "kind"),
        ('{"kind": "smoke", "start_s": 1, "zonee": "a"}', "zonee"),
        ('{"kind": "smoke", "start_s": 5, "end_s": 1}', "before"),
        ('{"kind": "smoke", "start_s": 5, "position": [1.5, 0]}', "0–1"),
        ('{"kind": "smoke", "start": "2025-06-01T08:00:00"}', "timezone"),
    ],
)
def test_bad_truth_line_error_names_source_and_line(line: str, problem: str) -> None:
    """Each bad truth line is reported with file:line and what is wrong."""
    with pytest.raises(TruthFileError) as info:
        parse_truth(["# header", line], source="t.jsonl")
    assert str(info.value).startswith("t.jsonl:2: ")
    assert problem in str(info.value)


def test_read_truth_reads_json_lines(tmp_path: Path) -> None:
    """A truth file on disk gives one event per non-blank line, line numbers kept."""
    path = tmp_path / "truth.jsonl"
    path.write_text(
        '{"kind": "illegal_parking", "zone": "curb", "start_s": 3, "position": [0.1, 0.9]}\n\n'
        '{"kind": "smoke", "start_s": 7}\n',
        encoding="utf-8",
    )
    events = read_truth(path)
    assert [e.line for e in events] == [1, 3]
    assert events[0].position == (0.1, 0.9)
