"""The work-order state machine: the 数字城管 / 12345 loop, its refusals and its audit trail."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citywatch.config.site import Placement
from citywatch.config.workflow import SlaTier, WorkingCalendar
from citywatch.contracts.messages import AlertKind
from citywatch.workorder import lifecycle as wo
from citywatch.workorder.lifecycle import (
    ActionArgumentError,
    TransitionRefused,
    WorkOrder,
    WorkOrderState,
    allowed_actions,
    apply,
    open_work_order,
)
from citywatch.workorder.merge import fold_into
from citywatch.workorder.priority import Routing

SHANGHAI = ZoneInfo("Asia/Shanghai")
CALENDAR = WorkingCalendar()
T0 = datetime(2026, 9, 14, 10, tzinfo=SHANGHAI)  # a Monday, 10:00 local
PLACE = Placement(district="d-shifan", street="s-chengdong", community="c-renmin")
PARKING = Routing(
    AlertKind.ILLEGAL_PARKING,
    "05-05",
    "机动车乱停放",
    "urban-mgmt",
    SlaTier(id="parking-4h", limit=timedelta(hours=4), clock="working"),
)
WATER = Routing(
    AlertKind.WATERLOGGING,
    "04-06",
    "道路积水",
    "drainage",
    SlaTier(id="waterlogging", limit=timedelta(minutes=30)),
)
S = WorkOrderState


def new_order(routing: Routing = PARKING, **overrides: Any) -> WorkOrder:
    """A parking order opened at T0 in 人民社区, auto-filed unless told otherwise."""
    args: dict[str, Any] = {
        "id": "wo-1",
        "routing": routing,
        "priority": 3,
        "opened_at": T0,
        "placement": PLACE,
        "alert_ids": ["a1", "a2", "a1"],
        "calendar": CALENDAR,
        "tz": SHANGHAI,
    } | overrides
    return open_work_order(**args)


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


# Each state reached from a fresh, auto-filed order by these (action, arguments) steps.
PATHS: dict[WorkOrderState, list[tuple[str, dict[str, Any]]]] = {
    S.FILED: [],
    S.DISPATCHED: [("dispatch", {"department": "urban-mgmt"})],
    S.SIGNED: [("dispatch", {"department": "urban-mgmt"}), ("sign", {})],
    S.IN_PROGRESS: [("dispatch", {"department": "urban-mgmt"}), ("sign", {}), ("start", {})],
    S.RETURNED: [("dispatch", {"department": "urban-mgmt"}), ("return", {"grounds": "交警辖区"})],
    S.EXTENDED: [
        ("dispatch", {"department": "urban-mgmt"}),
        ("sign", {}),
        ("extend", {"duration": timedelta(hours=2), "reason": "等待拖车"}),
    ],
    S.RESOLVED: [
        ("dispatch", {"department": "urban-mgmt"}),
        ("sign", {}),
        ("start", {}),
        ("resolve", {"note": "车辆已驶离"}),
    ],
}
PATHS[S.REWORK] = [*PATHS[S.RESOLVED], ("verify", {"passed": False, "note": "仍有车辆"})]
PATHS[S.VERIFIED] = [*PATHS[S.RESOLVED], ("verify", {"passed": True})]
PATHS[S.CLOSED] = [*PATHS[S.VERIFIED], ("close", {})]
PATHS[S.FALSE_POSITIVE] = [("mark_false_positive", {"reason": "影子误检"})]
PATHS[S.REOPENED] = [*PATHS[S.CLOSED], ("reopen", {"reason": "复发"})]


def order_in(state: WorkOrderState) -> WorkOrder:
    """A fresh order driven to ``state`` one minute per step."""
    if state is S.REPORTED:
        return new_order(auto_file=False)
    order = new_order()
    if state is S.MERGED:  # no action leads there: late data folds it into an older order
        fold_into(order, new_order(id="wo-0"), time=minutes(1))
        return order
    for step, (action, args) in enumerate(PATHS[state], start=1):
        apply(order, action, actor="op", time=minutes(step), **args)
    assert order.state is state
    return order


# -- opening ------------------------------------------------------------------------------


def test_machine_report_is_reported_then_filed() -> None:
    """An AI or sensor report is filed at once by citywatch, with its due time."""
    order = new_order()
    assert order.state is S.FILED
    assert [(e.event, e.actor, e.seq, e.id) for e in order.events] == [
        ("reported", "citywatch", 1, "wo-1.1"),
        ("filed", "citywatch", 2, "wo-1.2"),
    ]
    assert order.due_at == datetime(2026, 9, 14, 15, 30, tzinfo=SHANGHAI)
    assert order.alert_ids == ["a1", "a2"]
    assert order.events[0].data["department"] == "urban-mgmt"
    assert (order.district, order.street, order.community) == (
        "d-shifan",
        "s-chengdong",
        "c-renmin",
    )
    assert (order.sla_tier, order.category_name) == ("parking-4h", "机动车乱停放")
    assert order.opened_at.tzinfo is UTC


def test_citizen_report_waits_to_be_filed() -> None:
    """Without auto_file the order stays reported until an operator files it."""
    order = new_order(auto_file=False)
    assert order.state is S.REPORTED
    assert allowed_actions(order) == ["file", "mark_false_positive", "escalate"]


def test_auto_dispatch_sends_to_the_owning_department() -> None:
    """auto_dispatch dispatches to the routing's department in the same instant."""
    order = new_order(auto_dispatch=True)
    assert order.state is S.DISPATCHED
    assert order.events[-1].data == {"department": "urban-mgmt"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param({"priority": 0}, "priority", id="priority above 1"),
        pytest.param({"priority": 5}, "priority", id="priority below 4"),
        pytest.param({"opened_at": datetime(2026, 9, 14, 10)}, "no zone", id="naive time"),
        pytest.param(
            {"auto_file": False, "auto_dispatch": True}, "auto_file", id="dispatch unfiled"
        ),
    ],
)
def test_open_rejects_bad_arguments(overrides: dict[str, Any], message: str) -> None:
    """Opening validates priority, time zone and the automatic steps."""
    with pytest.raises(ActionArgumentError, match=message):
        new_order(**overrides)


# -- the loop -----------------------------------------------------------------------------


def test_full_loop_records_every_step() -> None:
    """Filed → dispatched → signed → in progress → resolved → verified → closed, all audited."""
    order = order_in(S.CLOSED)
    assert [(e.event, e.from_state, e.to_state) for e in order.events[1:]] == [
        ("filed", S.REPORTED, S.FILED),
        ("dispatched", S.FILED, S.DISPATCHED),
        ("signed", S.DISPATCHED, S.SIGNED),
        ("started", S.SIGNED, S.IN_PROGRESS),
        ("resolved", S.IN_PROGRESS, S.RESOLVED),
        ("verified", S.RESOLVED, S.VERIFIED),
        ("closed", S.VERIFIED, S.CLOSED),
    ]
    assert [e.seq for e in order.events] == list(range(1, 9))
    assert order.resolved_at == minutes(4)
    assert order.closed_at == minutes(6)
    assert order.events[5].reason == "车辆已驶离"


def test_return_goes_back_to_dispatch_elsewhere() -> None:
    """退单 with grounds returns the order; the dispatcher sends it to another department."""
    order = order_in(S.RETURNED)
    returned = order.events[-1]
    assert (returned.reason, returned.data) == ("交警辖区", {"department": "urban-mgmt"})
    event = apply(
        order, "dispatch", actor="dispatcher", time=minutes(5), department="traffic-police"
    )
    assert (order.state, order.department, event.data["department"]) == (
        S.DISPATCHED,
        "traffic-police",
        "traffic-police",
    )


def test_failed_verification_is_rework_back_to_work() -> None:
    """返工: a failed check clears the resolution, keeps the due time, and work starts again."""
    order = order_in(S.REWORK)
    due = order.due_at
    assert (order.events[-1].event, order.resolved_at) == ("rework", None)
    apply(order, "start", actor="unit", time=minutes(10))
    apply(order, "resolve", actor="unit", time=minutes(20), note="已拖离")
    assert (order.state, order.resolved_at, order.due_at) == (S.RESOLVED, minutes(20), due)


@pytest.mark.parametrize(
    ("args", "expected_due"),
    [
        pytest.param(
            {"duration": timedelta(hours=3)},
            datetime(2026, 9, 15, 10, tzinfo=SHANGHAI),
            id="duration runs in working time past closing",
        ),
        pytest.param(
            {"new_due": datetime(2026, 9, 16, 12, tzinfo=SHANGHAI)},
            datetime(2026, 9, 16, 12, tzinfo=SHANGHAI),
            id="explicit new due time",
        ),
    ],
)
def test_extension_moves_the_deadline(args: dict[str, Any], expected_due: datetime) -> None:
    """延期 before the deadline moves due_at and records both times."""
    order = order_in(S.SIGNED)
    event = apply(order, "extend", actor="supervisor", time=minutes(30), reason="需要拖车", **args)
    assert (order.state, order.due_at) == (S.EXTENDED, expected_due)
    assert event.data["previous_due_at"] == datetime(2026, 9, 14, 7, 30, tzinfo=UTC).isoformat()
    assert event.data["due_at"] == expected_due.astimezone(UTC).isoformat()
    apply(order, "start", actor="unit", time=minutes(40))
    assert order.state is S.IN_PROGRESS


def test_extension_after_the_deadline_is_refused() -> None:
    """Extensions are asked before the deadline; afterwards the action is refused."""
    order = order_in(S.IN_PROGRESS)
    with pytest.raises(TransitionRefused, match="has passed"):
        apply(
            order,
            "extend",
            actor="unit",
            time=T0 + timedelta(days=1),
            reason="晚了",
            duration=timedelta(hours=1),
        )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param({"reason": "x"}, "exactly one", id="neither due nor duration"),
        pytest.param(
            {"reason": "x", "duration": timedelta(hours=1), "new_due": minutes(600)},
            "exactly one",
            id="both",
        ),
        pytest.param({"reason": "x", "new_due": minutes(60)}, "not after", id="earlier due"),
        pytest.param({"reason": "x", "duration": timedelta(0)}, "adds time", id="zero duration"),
        pytest.param({"reason": " ", "duration": timedelta(hours=1)}, "reason", id="blank reason"),
    ],
)
def test_extension_arguments_are_checked(args: dict[str, Any], message: str) -> None:
    """A bad extension request is rejected and the deadline stays."""
    order = order_in(S.SIGNED)
    due = order.due_at
    with pytest.raises(ActionArgumentError, match=message):
        apply(order, "extend", actor="unit", time=minutes(30), **args)
    assert order.due_at == due


def test_false_positive_is_terminal_until_reopened() -> None:
    """A dismissed report allows only reopen, and stops the SLA clock."""
    order = order_in(S.FALSE_POSITIVE)
    assert allowed_actions(order) == ["reopen"]
    assert order.sla_stopped_at == minutes(1)


def test_reopen_starts_a_fresh_clock_and_escalation() -> None:
    """复发 clears resolution and escalation, counts the reopen and recomputes due_at."""
    order = order_in(S.IN_PROGRESS)
    apply(order, "escalate", actor="citywatch", time=minutes(5), level="street")
    for action, args in PATHS[S.CLOSED][3:]:
        apply(order, action, actor="op", time=minutes(10), **args)
    reopened_at = datetime(2026, 9, 15, 23, tzinfo=SHANGHAI)
    event = apply(order, "reopen", actor="citywatch", time=reopened_at, reason="同一地点再次违停")
    assert order.state is S.REOPENED
    assert (order.reopen_count, order.resolved_at, order.closed_at) == (1, None, None)
    assert (order.escalation_level, order.escalated_levels) == (None, [])
    assert order.clock_started_at == reopened_at
    assert order.due_at == datetime(2026, 9, 16, 14, 30, tzinfo=SHANGHAI)
    assert event.data["reopen_count"] == 1


@pytest.mark.parametrize(
    ("then", "state"),
    [
        pytest.param("dispatched", S.DISPATCHED, id="straight back to the same department"),
        pytest.param("filed", S.FILED, id="back to the dispatcher"),
        pytest.param("reopened", S.REOPENED, id="left for an operator"),
    ],
)
def test_recurrence_reopens_and_attaches_the_new_alerts(
    then: Literal["reopened", "filed", "dispatched"], state: WorkOrderState
) -> None:
    """recur() reopens, adds the new alert ids once, and continues as configured."""
    order = order_in(S.CLOSED)
    events = wo.recur(
        order, time=minutes(60), reason="复发", alert_ids=["a2", "a3", "a3"], then=then
    )
    assert events[0].event == "reopened"
    assert order.state is state
    assert order.alert_ids == ["a1", "a2", "a3"]
    assert order.department == "urban-mgmt"


# -- escalation events --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("placement", "level", "unit"),
    [
        pytest.param(PLACE, "community", ("community", "c-renmin"), id="community unit"),
        pytest.param(PLACE, "street", ("street", "s-chengdong"), id="street unit"),
        pytest.param(PLACE, "district", ("district", "d-shifan"), id="district unit"),
        pytest.param(
            Placement(district="d-shifan", street="s-chengxi"),
            "community",
            ("street", "s-chengxi"),
            id="no community goes to the street",
        ),
        pytest.param(
            Placement(district="d-shifan"),
            "community",
            ("district", "d-shifan"),
            id="district only",
        ),
    ],
)
def test_escalation_event_names_the_grid_unit(
    placement: Placement, level: str, unit: tuple[str, str]
) -> None:
    """An escalation records the level and the unit it goes to; the state does not change."""
    order = new_order(placement=placement)
    event = apply(order, "escalate", actor="citywatch", time=minutes(1), level=level)
    assert (event.event, event.from_state, event.to_state) == ("escalated", S.FILED, S.FILED)
    assert (event.data["level"], (event.data["unit_level"], event.data["unit"])) == (level, unit)
    assert order.escalation_level == level


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param("street", "street", id="same level twice"),
        pytest.param("street", "community", id="back down"),
    ],
)
def test_escalation_only_climbs(first: str, second: str) -> None:
    """A level at or below the one reached is refused."""
    order = new_order()
    apply(order, "escalate", actor="citywatch", time=minutes(1), level=first)
    with pytest.raises(TransitionRefused, match="only climbs"):
        apply(order, "escalate", actor="citywatch", time=minutes(2), level=second)


def test_escalation_past_district_is_not_offered() -> None:
    """Once at the district there is nowhere higher to whistle."""
    order = new_order()
    apply(order, "escalate", actor="citywatch", time=minutes(1), level="district")
    assert "escalate" not in allowed_actions(order)


# -- refusals -----------------------------------------------------------------------------

ALLOWED = {
    S.REPORTED: ["file", "mark_false_positive", "escalate"],
    S.FILED: ["dispatch", "mark_false_positive", "escalate"],
    S.DISPATCHED: ["sign", "return", "mark_false_positive", "escalate"],
    S.SIGNED: ["return", "extend", "start", "resolve", "mark_false_positive", "escalate"],
    S.IN_PROGRESS: ["extend", "resolve", "mark_false_positive", "escalate"],
    S.RETURNED: ["dispatch", "mark_false_positive", "escalate"],
    S.EXTENDED: ["extend", "start", "resolve", "mark_false_positive", "escalate"],
    S.RESOLVED: ["verify"],
    S.REWORK: ["extend", "start", "resolve", "escalate"],
    S.VERIFIED: ["close"],
    S.CLOSED: ["reopen"],
    S.FALSE_POSITIVE: ["reopen"],
    S.REOPENED: ["file", "dispatch", "mark_false_positive", "escalate"],
    S.MERGED: [],  # 并单: folded into an older order of the same problem, terminal
}


@pytest.mark.parametrize("state", list(S), ids=[s.value for s in S])
def test_allowed_actions_per_state(state: WorkOrderState) -> None:
    """Each state allows exactly the actions of the documented table."""
    assert allowed_actions(order_in(state)) == ALLOWED[state]


# One valid argument set per action, so a refusal can only come from the state.
ARGS: dict[str, dict[str, Any]] = {
    "file": {},
    "dispatch": {"department": "urban-mgmt"},
    "sign": {},
    "return": {"grounds": "非本单位职责"},
    "extend": {"duration": timedelta(minutes=30), "reason": "需要时间"},
    "start": {},
    "resolve": {"note": "处置完毕"},
    "verify": {"passed": True},
    "close": {},
    "mark_false_positive": {"reason": "误报"},
    "reopen": {"reason": "复发"},
    "escalate": {"level": "community"},
}

REFUSED = [(state, action) for state in S for action in ARGS if action not in ALLOWED[state]]


@pytest.mark.parametrize(
    ("state", "action"), REFUSED, ids=[f"{a} from {s.value}" for s, a in REFUSED]
)
def test_refused_action_names_state_action_and_allowed(state: WorkOrderState, action: str) -> None:
    """A refused action raises TransitionRefused naming the state, the action and the choices,
    and leaves the order exactly as it was.
    """
    order = order_in(state)
    before = copy.deepcopy(order)
    with pytest.raises(TransitionRefused) as refused:
        apply(order, action, actor="op", time=minutes(30), **ARGS[action])
    assert (refused.value.state, refused.value.action, refused.value.allowed) == (
        state,
        action,
        ALLOWED[state],
    )
    assert state.value in str(refused.value) and action in str(refused.value)
    assert order == before


@pytest.mark.parametrize(
    ("state", "action", "args", "message"),
    [
        pytest.param(S.FILED, "dispatch", {"department": ""}, "department", id="blank department"),
        pytest.param(
            S.DISPATCHED, "return", {"grounds": "  "}, "grounds", id="return without grounds"
        ),
        pytest.param(S.IN_PROGRESS, "resolve", {"note": ""}, "note", id="resolve without note"),
        pytest.param(
            S.RESOLVED,
            "verify",
            {"passed": False},
            "verification failed",
            id="failed check without note",
        ),
        pytest.param(S.FILED, "escalate", {"level": "city"}, "not one of", id="unknown level"),
        pytest.param(S.FILED, "teleport", {}, "unknown action", id="unknown action"),
        pytest.param(S.FILED, "dispatch", {"dept": "x"}, "dispatch", id="misspelt argument"),
    ],
)
def test_bad_arguments_are_rejected_and_change_nothing(
    state: WorkOrderState, action: str, args: dict[str, Any], message: str
) -> None:
    """Missing or wrong arguments raise ActionArgumentError before anything changes."""
    order = order_in(state)
    before = copy.deepcopy(order)
    with pytest.raises(ActionArgumentError, match=message):
        apply(order, action, actor="op", time=minutes(30), **args)
    assert order == before


def test_naive_time_and_blank_actor_are_rejected() -> None:
    """Times must be aware and actors named: the audit trail needs both."""
    order = new_order()
    with pytest.raises(ActionArgumentError, match="no zone"):
        apply(order, "dispatch", actor="op", time=datetime(2026, 9, 14, 10), department="x")
    with pytest.raises(ActionArgumentError, match="actor"):
        apply(order, "dispatch", actor="", time=minutes(1), department="x")


def test_per_action_functions_match_apply() -> None:
    """The per-action functions and apply() produce the same transition."""
    by_name, by_function = new_order(), new_order()
    a = apply(by_name, "dispatch", actor="op", time=minutes(1), department="urban-mgmt")
    b = wo.dispatch(by_function, actor="op", time=minutes(1), department="urban-mgmt")
    assert a == b and by_name == by_function


def test_transition_becomes_the_wire_event() -> None:
    """as_message() gives the WorkOrderEvent other systems consume."""
    order = new_order()
    event = wo.as_message(order, order.events[-1])
    assert (event.id, event.event, event.state, event.kind, event.category) == (
        "wo-1.2",
        "filed",
        "filed",
        AlertKind.ILLEGAL_PARKING,
        "05-05",
    )
    assert (event.department, event.priority, event.alert_ids) == ("urban-mgmt", 3, ("a1", "a2"))


# -- property: any sequence of actions ----------------------------------------------------

actions = st.lists(
    st.tuples(st.sampled_from(sorted(ARGS)), st.integers(min_value=1, max_value=120)),
    max_size=25,
)


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(steps=actions)
def test_any_action_sequence_keeps_the_audit_trail_whole(steps: list[tuple[str, int]]) -> None:
    """Refused actions change nothing; allowed ones add one event with the next seq."""
    order = new_order(routing=WATER)
    now = T0
    for action, gap_min in steps:
        now += timedelta(minutes=gap_min)
        before = copy.deepcopy(order)
        allowed = action in allowed_actions(order)
        try:
            event = apply(order, action, actor="op", time=now, **ARGS[action])
        except TransitionRefused:
            assert order == before
            continue
        assert allowed
        assert order.events == [*before.events, event]
        assert event.seq == before.seq + 1 and event.id == f"wo-1.{event.seq}"
        assert event.from_state == before.state and event.to_state == order.state
    assert [e.seq for e in order.events] == list(range(1, len(order.events) + 1))
