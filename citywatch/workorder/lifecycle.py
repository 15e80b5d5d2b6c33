"""The work-order state machine of the 数字城管 and 12345 loops (pure: time and actor are
arguments, nothing here reads a clock or does I/O).

The states, the actions each allows and the order record are in
:mod:`citywatch.workorder.order` (and importable from here). Every action returns one
:class:`WorkOrderTransition`, also appended to ``order.events`` (the audit trail); a refused
action raises :class:`TransitionRefused` (HTTP 409 at the command center) and leaves the
order untouched, as does a bad argument (:class:`ActionArgumentError`, HTTP 422).

API: one function per action (``file``, ``dispatch``, ``sign``, ``return_``, ``extend``,
``start``, ``resolve``, ``verify``, ``close``, ``mark_false_positive``, ``reopen``,
``escalate``), and :func:`apply` which calls one by its :class:`Action` name (for the API
and replay). :func:`open_work_order` and :func:`recur` chain the automatic steps and so
return several events.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Literal

from citywatch.config.site import Placement
from citywatch.config.workflow import WorkingCalendar
from citywatch.workorder.order import (
    ALLOWED_FROM,
    GRID_LEVELS,
    OPEN_STATES,
    SYSTEM_ACTOR,
    Action,
    ActionArgumentError,
    EventData,
    S,
    TransitionRefused,
    WorkOrder,
    WorkOrderState,
    WorkOrderTransition,
    allowed_actions,
    as_message,
)
from citywatch.workorder.priority import HIGHEST, LOWEST, Routing
from citywatch.workorder.sla import SlaClock

__all__ = [  # the order's names too, so that callers need one import
    "ALLOWED_FROM",
    "GRID_LEVELS",
    "OPEN_STATES",
    "SYSTEM_ACTOR",
    "Action",
    "ActionArgumentError",
    "EventData",
    "TransitionRefused",
    "WorkOrder",
    "WorkOrderState",
    "WorkOrderTransition",
    "allowed_actions",
    "apply",
    "as_message",
    "close",
    "dispatch",
    "escalate",
    "escalation_unit",
    "extend",
    "file",
    "mark_false_positive",
    "open_work_order",
    "recur",
    "reopen",
    "resolve",
    "return_",
    "sign",
    "start",
    "verify",
]


# -- helpers -----------------------------------------------------------------------------


def aware_utc(time: datetime) -> datetime:
    """``time`` in UTC; a naive time is refused (an argument error, HTTP 422)."""
    if time.tzinfo is None or time.utcoffset() is None:
        raise ActionArgumentError(f"time {time.isoformat()} has no zone: pass an aware datetime")
    return time.astimezone(UTC)


def _text(value: str | None, what: str) -> str:
    if value is None or not value.strip():
        raise ActionArgumentError(f"{what} is required and cannot be blank")
    return value


def _check(order: WorkOrder, action: Action, actor: str, time: datetime) -> datetime:
    """Refuse an action the state does not allow; validate what every action shares."""
    if order.state not in ALLOWED_FROM[action]:
        raise TransitionRefused(order, action)
    _text(actor, "actor")
    return aware_utc(time)


def record_transition(
    order: WorkOrder,
    event: str,
    to_state: WorkOrderState,
    *,
    actor: str,
    time: datetime,
    reason: str | None = None,
    data: EventData | None = None,
) -> WorkOrderTransition:
    """Append one transition to ``order``'s audit trail and move it to ``to_state`` (every
    change of an order goes through here, so every change is an event)."""
    order.seq += 1
    transition = WorkOrderTransition(
        id=f"{order.id}.{order.seq}",
        work_order_id=order.id,
        seq=order.seq,
        event=event,
        from_state=order.state,
        to_state=to_state,
        actor=actor,
        time=time,
        reason=reason,
        data=data or {},
    )
    order.state = to_state
    order.events.append(transition)
    return transition


# -- opening ------------------------------------------------------------------------------


def open_work_order(
    *,
    id: str,
    routing: Routing,
    priority: int,
    opened_at: datetime,
    placement: Placement,
    alert_ids: Iterable[str],
    calendar: WorkingCalendar,
    tz: tzinfo,
    auto_file: bool = True,
    auto_dispatch: bool = False,
    actor: str = SYSTEM_ACTOR,
    recurrence_of: str | None = None,
) -> WorkOrder:
    """A new work order, reported, and filed at once when ``auto_file`` (the default).

    Machine reports (AI cameras, sensors, drones) are filed directly; a citizen's report
    waits for an operator's ``file`` (受理/立案). ``auto_dispatch`` also dispatches to the
    owning department (智能派单). The kind comes from ``routing``; due_at from its tier.
    ``recurrence_of`` names the earlier order this one recurs (复发, a ``new_linked`` kind):
    its ``reported`` event says so.
    """
    if not HIGHEST <= priority <= LOWEST:
        raise ActionArgumentError(f"priority {priority} is outside 1 (highest)–4")
    if auto_dispatch and not auto_file:
        raise ActionArgumentError("auto_dispatch needs auto_file: an order is filed first")
    opened_at = aware_utc(opened_at)
    clock = SlaClock(routing.sla_tier, calendar, tz)
    order = WorkOrder(
        id=_text(id, "work order id"),
        kind=routing.kind,
        category_code=routing.category_code,
        department=routing.department,
        priority=priority,
        state=S.REPORTED,
        opened_at=opened_at,
        due_at=clock.due(opened_at),
        clock_started_at=opened_at,
        sla=clock,
        district=placement.district,
        street=placement.street,
        community=placement.community,
        category_name=routing.category_name,
        alert_ids=list(dict.fromkeys(alert_ids)),
    )
    order.events.append(
        WorkOrderTransition(
            id=f"{order.id}.1",
            work_order_id=order.id,
            seq=1,
            event="reported",
            from_state=S.REPORTED,
            to_state=S.REPORTED,
            actor=actor,
            time=opened_at,
            reason=f"recurrence (复发) of {recurrence_of}" if recurrence_of else None,
            data={
                **({"recurrence_of": recurrence_of} if recurrence_of else {}),
                "kind": routing.kind.value,
                "category": routing.category_code,
                "department": routing.department,
                "priority": priority,
                "sla_tier": clock.tier.id,
                "due_at": order.due_at.isoformat(),
                "alerts": len(order.alert_ids),
            },
        )
    )
    order.seq = 1
    if auto_file:
        file(order, actor=actor, time=opened_at, reason="machine report filed automatically")
    if auto_dispatch:
        dispatch(order, actor=actor, time=opened_at, department=routing.department)
    return order


# -- actions ------------------------------------------------------------------------------


def file(
    order: WorkOrder, *, actor: str, time: datetime, reason: str | None = None
) -> WorkOrderTransition:
    """立案: accept the report as a case."""
    time = _check(order, Action.FILE, actor, time)
    return record_transition(order, "filed", S.FILED, actor=actor, time=time, reason=reason)


def dispatch(
    order: WorkOrder, *, actor: str, time: datetime, department: str, reason: str | None = None
) -> WorkOrderTransition:
    """派遣: send the case to a department (the owner, or another after a 退单)."""
    time = _check(order, Action.DISPATCH, actor, time)
    _text(department, "department")
    order.department = department
    return record_transition(
        order,
        "dispatched",
        S.DISPATCHED,
        actor=actor,
        time=time,
        reason=reason,
        data={"department": department},
    )


def sign(order: WorkOrder, *, actor: str, time: datetime) -> WorkOrderTransition:
    """签收: the department acknowledges the order is theirs."""
    time = _check(order, Action.SIGN, actor, time)
    return record_transition(
        order, "signed", S.SIGNED, actor=actor, time=time, data={"department": order.department}
    )


def return_(order: WorkOrder, *, actor: str, time: datetime, grounds: str) -> WorkOrderTransition:
    """退单: the department returns the order as outside its remit, with grounds."""
    time = _check(order, Action.RETURN, actor, time)
    _text(grounds, "grounds for the return")
    return record_transition(
        order,
        "returned",
        S.RETURNED,
        actor=actor,
        time=time,
        reason=grounds,
        data={"department": order.department},
    )


def extend(
    order: WorkOrder,
    *,
    actor: str,
    time: datetime,
    reason: str,
    new_due: datetime | None = None,
    duration: timedelta | None = None,
) -> WorkOrderTransition:
    """延期 approved: move the deadline later, by a new due time or a duration in the
    order's own clock (working time for a working-time tier). Only before the deadline.
    """
    time = _check(order, Action.EXTEND, actor, time)
    _text(reason, "reason for the extension")
    if (new_due is None) == (duration is None):
        raise ActionArgumentError("give exactly one of new_due or duration")
    if time > order.due_at:
        raise TransitionRefused(
            order,
            Action.EXTEND,
            f"the deadline {order.due_at.isoformat()} has passed; extensions are asked before it",
        )
    if duration is not None:
        if duration <= timedelta(0):
            raise ActionArgumentError(f"an extension adds time; got {duration}")
        due = order.sla.add(order.due_at, duration)
    else:
        assert new_due is not None
        due = aware_utc(new_due)
    if due <= order.due_at:
        raise ActionArgumentError(
            f"new due time {due.isoformat()} is not after the current {order.due_at.isoformat()}"
        )
    previous = order.due_at
    order.due_at = due
    return record_transition(
        order,
        "extended",
        S.EXTENDED,
        actor=actor,
        time=time,
        reason=reason,
        data={"previous_due_at": previous.isoformat(), "due_at": due.isoformat()},
    )


def start(order: WorkOrder, *, actor: str, time: datetime) -> WorkOrderTransition:
    """Work begins (or resumes, after an extension or a failed verification)."""
    time = _check(order, Action.START, actor, time)
    return record_transition(order, "started", S.IN_PROGRESS, actor=actor, time=time)


def resolve(
    order: WorkOrder, *, actor: str, time: datetime, note: str, photo: str | None = None
) -> WorkOrderTransition:
    """处置完成: the department reports the problem handled; the SLA clock stops. ``photo``
    names an attachment showing the result (处置后照片), kept in the event's data.
    """
    time = _check(order, Action.RESOLVE, actor, time)
    _text(note, "a resolution note")
    order.resolved_at = time
    data: EventData = {"photo_id": photo} if photo else {}
    return record_transition(
        order, "resolved", S.RESOLVED, actor=actor, time=time, reason=note, data=data
    )


def verify(
    order: WorkOrder, *, actor: str, time: datetime, passed: bool, note: str | None = None
) -> WorkOrderTransition:
    """核查: the center checks the fix; a failure sends it back as 返工 and restarts the clock
    against the original due time.
    """
    time = _check(order, Action.VERIFY, actor, time)
    if passed:
        return record_transition(order, "verified", S.VERIFIED, actor=actor, time=time, reason=note)
    _text(note, "a note saying why verification failed")
    order.resolved_at = None
    return record_transition(order, "rework", S.REWORK, actor=actor, time=time, reason=note)


def close(
    order: WorkOrder, *, actor: str, time: datetime, note: str | None = None
) -> WorkOrderTransition:
    """结案: the case is closed after a passed verification."""
    time = _check(order, Action.CLOSE, actor, time)
    order.closed_at = time
    return record_transition(order, "closed", S.CLOSED, actor=actor, time=time, reason=note)


def mark_false_positive(
    order: WorkOrder, *, actor: str, time: datetime, reason: str
) -> WorkOrderTransition:
    """Dismiss a report that was no problem (a machine's false alarm); terminal unless
    reopened.
    """
    time = _check(order, Action.MARK_FALSE_POSITIVE, actor, time)
    _text(reason, "reason for the dismissal")
    order.closed_at = time
    return record_transition(
        order, "false_positive", S.FALSE_POSITIVE, actor=actor, time=time, reason=reason
    )


def reopen(order: WorkOrder, *, actor: str, time: datetime, reason: str) -> WorkOrderTransition:
    """复发: the problem is back; a fresh SLA clock starts now and escalation starts over."""
    time = _check(order, Action.REOPEN, actor, time)
    _text(reason, "reason for reopening")
    order.reopen_count += 1
    order.clock_started_at = time
    order.due_at = order.sla.due(time)
    order.resolved_at = None
    order.closed_at = None
    order.escalation_level = None
    order.escalated_levels = []
    return record_transition(
        order,
        "reopened",
        S.REOPENED,
        actor=actor,
        time=time,
        reason=reason,
        data={"reopen_count": order.reopen_count, "due_at": order.due_at.isoformat()},
    )


def escalation_unit(order: WorkOrder, level: str) -> tuple[str, str]:
    """(unit level, unit id) a whistle at ``level`` goes to: the order's grid unit at that
    level, or the nearest one above when the order's placement stops short of it.
    """
    units = {"community": order.community, "street": order.street, "district": order.district}
    for candidate in GRID_LEVELS[GRID_LEVELS.index(level) :]:
        unit = units[candidate]
        if unit:
            return candidate, unit
    raise AssertionError("unreachable: every order has a district")  # pragma: no cover


def escalate(
    order: WorkOrder, *, actor: str, time: datetime, level: str, reason: str | None = None
) -> WorkOrderTransition:
    """提级 ("吹哨"): hand the order up to the community, street or district unit. The state
    stays; escalation only climbs, one event per level.
    """
    time = _check(order, Action.ESCALATE, actor, time)
    if level not in GRID_LEVELS:
        raise ActionArgumentError(f"escalation level {level!r} is not one of {GRID_LEVELS}")
    current = order.escalation_level
    if current is not None and GRID_LEVELS.index(level) <= GRID_LEVELS.index(current):
        raise TransitionRefused(
            order, Action.ESCALATE, f"already escalated to {current}; escalation only climbs"
        )
    unit_level, unit = escalation_unit(order, level)
    order.escalation_level = level
    order.escalated_levels.append(level)
    return record_transition(
        order,
        "escalated",
        order.state,
        actor=actor,
        time=time,
        reason=reason,
        data={"level": level, "unit_level": unit_level, "unit": unit},
    )


# -- by name, and chains ----------------------------------------------------------------------

_ACTIONS: dict[Action, Callable[..., WorkOrderTransition]] = {
    Action.FILE: file,
    Action.DISPATCH: dispatch,
    Action.SIGN: sign,
    Action.RETURN: return_,
    Action.EXTEND: extend,
    Action.START: start,
    Action.RESOLVE: resolve,
    Action.VERIFY: verify,
    Action.CLOSE: close,
    Action.MARK_FALSE_POSITIVE: mark_false_positive,
    Action.REOPEN: reopen,
    Action.ESCALATE: escalate,
}


def apply(
    order: WorkOrder, action: Action | str, *, actor: str, time: datetime, **args: Any
) -> WorkOrderTransition:
    """Run the action named ``action`` (an :class:`Action` value) with its arguments."""
    try:
        name = Action(action)
    except ValueError:
        raise ActionArgumentError(
            f"unknown action {action!r}; actions: {[a.value for a in Action]}"
        ) from None
    function = _ACTIONS[name]
    try:
        inspect.signature(function).bind(order, actor=actor, time=time, **args)
    except TypeError as error:
        raise ActionArgumentError(f"{name.value}: {error}") from None
    return function(order, actor=actor, time=time, **args)


def recur(
    order: WorkOrder,
    *,
    time: datetime,
    reason: str,
    alert_ids: Iterable[str] = (),
    then: Literal["reopened", "filed", "dispatched"] = "dispatched",
    actor: str = SYSTEM_ACTOR,
) -> list[WorkOrderTransition]:
    """A recurrence within the reopen window: reopen, attach the new alerts, and go on to
    ``then`` — filed for a dispatcher, or dispatched straight back to the same department.
    """
    events = [reopen(order, actor=actor, time=time, reason=reason)]
    order.alert_ids.extend(a for a in dict.fromkeys(alert_ids) if a not in order.alert_ids)
    if then == "filed":
        events.append(file(order, actor=actor, time=time))
    elif then == "dispatched":
        events.append(dispatch(order, actor=actor, time=time, department=order.department))
    return events
