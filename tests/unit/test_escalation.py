"""Escalation community → street → district as the SLA budget runs out."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citywatch.config.site import Placement
from citywatch.config.workflow import EscalationStep, SlaTier, WorkingCalendar
from citywatch.contracts.messages import AlertKind
from citywatch.workorder.escalation import (
    due_escalations,
    escalate_due,
    escalation_schedule,
    next_escalation_at,
)
from citywatch.workorder.lifecycle import WorkOrder, apply, open_work_order
from citywatch.workorder.priority import Routing

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 9, 14, 10, tzinfo=SHANGHAI)  # Monday 10:00 local
PLACE = Placement(district="d-shifan", street="s-chengdong", community="c-renmin")
WATER_30M = SlaTier(id="waterlogging", limit=timedelta(minutes=30))
SIMPLE_1WD = SlaTier(id="simple", limit=timedelta(days=1), clock="working")  # 7 working hours


def order_with(tier: SlaTier, placement: Placement = PLACE) -> WorkOrder:
    routing = Routing(AlertKind.WATERLOGGING, "04-06", "道路积水", "drainage", tier)
    return open_work_order(
        id="wo-7",
        routing=routing,
        priority=2,
        opened_at=T0,
        placement=placement,
        alert_ids=["a1"],
        calendar=WorkingCalendar(),
        tz=SHANGHAI,
    )


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def levels(steps: list[EscalationStep]) -> list[str]:
    return [s.level for s in steps]


@pytest.mark.parametrize(
    ("elapsed_min", "expected"),
    [
        pytest.param(23, [], id="before 0.8 nothing"),
        pytest.param(24, ["community"], id="0.8 of 30 min is the community"),
        pytest.param(30, ["community", "street"], id="at the deadline the street"),
        pytest.param(59, ["community", "street"], id="just short of twice the limit"),
        pytest.param(60, ["community", "street", "district"], id="twice the limit the district"),
    ],
)
def test_due_steps_follow_the_elapsed_fraction(elapsed_min: float, expected: list[str]) -> None:
    """Community at 0.8, street at 1.0, district at 2.0 of a 30-minute natural limit."""
    assert levels(due_escalations(order_with(WATER_30M), at(elapsed_min))) == expected


def test_working_time_steps_skip_nights_and_lunch() -> None:
    """A 1-working-day limit from Monday 10:00 escalates Mon 17:06, Tue 10:00, Wed 10:00."""
    schedule = escalation_schedule(order_with(SIMPLE_1WD))
    assert [(s.level, t) for s, t in schedule] == [
        ("community", datetime(2026, 9, 14, 17, 6, tzinfo=SHANGHAI)),
        ("street", datetime(2026, 9, 15, 10, tzinfo=SHANGHAI)),
        ("district", datetime(2026, 9, 16, 10, tzinfo=SHANGHAI)),
    ]


def test_timer_never_whistles_twice_for_one_level() -> None:
    """Polling every few seconds yields each level once, with its grid unit in the event."""
    order = order_with(WATER_30M)
    fired = []
    for seconds in range(0, 61 * 60, 5):
        fired += escalate_due(order, at(seconds / 60))
    assert [(e.data["level"], e.data["unit"], e.time) for e in fired] == [
        ("community", "c-renmin", at(24)),
        ("street", "s-chengdong", at(30)),
        ("district", "d-shifan", at(60)),
    ]
    assert order.escalation_level == "district"
    assert due_escalations(order, at(600)) == []


def test_next_escalation_time_lets_a_timer_sleep() -> None:
    """next_escalation_at() gives the next pending step's time, then None when all are taken."""
    order = order_with(WATER_30M)
    assert next_escalation_at(order) == at(24)
    escalate_due(order, at(24))
    assert next_escalation_at(order) == at(30)
    escalate_due(order, at(60))
    assert next_escalation_at(order) is None


def test_late_poll_fires_all_due_levels_in_order() -> None:
    """A timer that was down catches up with one event per level, lowest first."""
    order = order_with(WATER_30M)
    events = escalate_due(order, at(90))
    assert [e.data["level"] for e in events] == ["community", "street", "district"]
    assert [e.seq for e in events] == [3, 4, 5]


# Reaching each stopped state from a filed order.
STOPPED: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "resolved": [
        ("dispatch", {"department": "drainage"}),
        ("sign", {}),
        ("resolve", {"note": "已排水"}),
    ],
    "false_positive": [("mark_false_positive", {"reason": "传感器误报"})],
}
STOPPED["verified"] = [*STOPPED["resolved"], ("verify", {"passed": True})]
STOPPED["closed"] = [*STOPPED["verified"], ("close", {})]


@pytest.mark.parametrize("state", sorted(STOPPED))
def test_no_escalation_once_handled(state: str) -> None:
    """Resolved, verified, closed and false-positive orders never escalate."""
    order = order_with(WATER_30M)
    for action, args in STOPPED[state]:
        apply(order, action, actor="op", time=at(1), **args)
    assert order.state == state
    assert due_escalations(order, at(1000)) == []
    assert escalate_due(order, at(1000)) == []
    assert next_escalation_at(order) is None


def test_failed_verification_resumes_escalation() -> None:
    """返工 puts the order back on the clock, so overdue rework escalates."""
    order = order_with(WATER_30M)
    for action, args in STOPPED["resolved"]:
        apply(order, action, actor="op", time=at(1), **args)
    apply(order, "verify", actor="op", time=at(2), passed=False, note="仍有积水")
    assert levels(due_escalations(order, at(31))) == ["community", "street"]


def test_manual_escalation_skips_lower_timer_steps() -> None:
    """After an operator whistles the street, the timer does not go back to the community."""
    order = order_with(WATER_30M)
    apply(order, "escalate", actor="duty-officer", time=at(5), level="street")
    assert levels(due_escalations(order, at(30))) == []
    assert levels(due_escalations(order, at(60))) == ["district"]


def test_extension_moves_the_later_steps() -> None:
    """An approved extension shifts the deadline and with it the street and district steps."""
    order = order_with(WATER_30M)
    apply(order, "dispatch", actor="op", time=at(1), department="drainage")
    apply(order, "sign", actor="unit", time=at(2))
    apply(order, "extend", actor="supervisor", time=at(10), reason="泵车在途", new_due=at(60))
    assert levels(due_escalations(order, at(47))) == []
    assert levels(due_escalations(order, at(48))) == ["community"]
    assert levels(due_escalations(order, at(60))) == ["community", "street"]
    assert levels(due_escalations(order, at(120))) == ["community", "street", "district"]


def test_deadline_outside_hours_escalates_exactly_at_it() -> None:
    """A working-time order extended to Saturday 10:00 whistles the street then, not Friday."""
    order = order_with(SIMPLE_1WD)
    apply(order, "dispatch", actor="op", time=at(1), department="drainage")
    apply(order, "sign", actor="unit", time=at(2))
    saturday = datetime(2026, 9, 19, 10, tzinfo=SHANGHAI)
    apply(order, "extend", actor="supervisor", time=at(10), reason="周末施工", new_due=saturday)
    assert "street" not in levels(due_escalations(order, saturday - timedelta(seconds=1)))
    assert "street" in levels(due_escalations(order, saturday))


def test_reopened_order_escalates_again_on_its_new_clock() -> None:
    """复发 starts a fresh clock: the levels can be whistled again, relative to the reopen."""
    order = order_with(WATER_30M)
    escalate_due(order, at(31))
    for action, args in STOPPED["closed"]:
        apply(order, action, actor="op", time=at(32), **args)
    apply(order, "reopen", actor="citywatch", time=at(100), reason="再次积水")
    assert levels(due_escalations(order, at(123))) == []
    assert levels(due_escalations(order, at(124))) == ["community"]


def test_escalation_without_community_goes_to_the_street() -> None:
    """An order placed only to a street sends its community whistle to that street."""
    order = order_with(WATER_30M, Placement(district="d-shifan", street="s-chengxi"))
    event = escalate_due(order, at(24))[0]
    assert (event.data["level"], event.data["unit_level"], event.data["unit"]) == (
        "community",
        "street",
        "s-chengxi",
    )


@pytest.mark.parametrize(
    ("steps", "elapsed_min", "expected"),
    [
        pytest.param(
            (
                EscalationStep(level="street", after_fraction=0.5),
                EscalationStep(level="community", after_fraction=0.8),
            ),
            30,
            ["street"],
            id="a lower level configured later is skipped",
        ),
        pytest.param(
            (EscalationStep(level="district", after_fraction=1.0),),
            30,
            ["district"],
            id="a site may whistle the district directly",
        ),
        pytest.param((), 600, [], id="no steps configured, no escalation"),
    ],
)
def test_configured_steps(
    steps: tuple[EscalationStep, ...], elapsed_min: float, expected: list[str]
) -> None:
    """The site's Sla.escalation steps are used as given, and escalation still only climbs."""
    assert levels(due_escalations(order_with(WATER_30M), at(elapsed_min), steps)) == expected


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(
    polls=st.lists(st.integers(min_value=0, max_value=3 * 24 * 60), max_size=30),
    tier=st.sampled_from([WATER_30M, SIMPLE_1WD]),
)
def test_any_polling_climbs_once_per_level(polls: list[int], tier: SlaTier) -> None:
    """Whatever the polling times, levels fire at most once each, in climbing order."""
    order = order_with(tier)
    fired = []
    for minute in sorted(polls):
        fired += [e.data["level"] for e in escalate_due(order, at(minute))]
    assert fired == [lv for lv in ("community", "street", "district") if lv in fired]
    if polls:
        schedule = escalation_schedule(order)
        expected = [s.level for s, t in schedule if t <= at(max(polls))]
        assert fired == expected
