"""The work order as a record: its states, the actions each state allows, the audit-trail
entry every action leaves, the errors of a refused action, and the wire message of one
transition. The actions themselves are in :mod:`citywatch.workorder.lifecycle`.

States and the actions that move between them::

    reported ─file→ filed ─dispatch→ dispatched ─sign→ signed ─start→ in_progress
        ─resolve→ resolved ─verify(passed)→ verified ─close→ closed
    signed                   ─resolve→ resolved (a quick fix needs no start)
    dispatched, signed       ─return (退单, grounds)→ returned ─dispatch→ dispatched
    signed, in_progress,     ─extend (延期, before the deadline)→ extended
      rework, extended          (then start or resolve)
    resolved                 ─verify(failed)→ rework (返工) ─start→ in_progress
    open, except rework      ─mark_false_positive→ false_positive
    closed, false_positive   ─reopen (复发)→ reopened ─file / dispatch→ …
    any open state           ─escalate(level)→ same state (提级, an event only)

"Open" means not resolved, verified, closed or false_positive: the SLA clock runs and
escalation may climb.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from citywatch.contracts.messages import AlertKind, WorkOrderEvent
from citywatch.workorder.sla import SlaClock

SYSTEM_ACTOR = "citywatch"
GRID_LEVELS = ("community", "street", "district")
"""Escalation climbs these in order (村社 → 街道 → 区)."""

EventData = dict[str, str | int | float | None]


class WorkOrderState(StrEnum):
    REPORTED = "reported"
    FILED = "filed"  # 立案
    DISPATCHED = "dispatched"  # 派遣
    SIGNED = "signed"  # 签收
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"  # 处置完成
    VERIFIED = "verified"  # 核查通过
    CLOSED = "closed"  # 结案
    RETURNED = "returned"  # 退单
    REWORK = "rework"  # 返工
    EXTENDED = "extended"  # 延期
    FALSE_POSITIVE = "false_positive"
    REOPENED = "reopened"  # 复发
    MERGED = "merged"  # 并单: folded into an older order of the same problem (terminal)


class Action(StrEnum):
    FILE = "file"
    DISPATCH = "dispatch"
    SIGN = "sign"
    RETURN = "return"
    EXTEND = "extend"
    START = "start"
    RESOLVE = "resolve"
    VERIFY = "verify"
    CLOSE = "close"
    MARK_FALSE_POSITIVE = "mark_false_positive"
    REOPEN = "reopen"
    ESCALATE = "escalate"


S = WorkOrderState
OPEN_STATES = frozenset(
    {
        S.REPORTED,
        S.FILED,
        S.DISPATCHED,
        S.SIGNED,
        S.IN_PROGRESS,
        S.RETURNED,
        S.REWORK,
        S.EXTENDED,
        S.REOPENED,
    }
)
"""States in which the problem is still unhandled: the clock runs, escalation may climb."""

ALLOWED_FROM: dict[Action, frozenset[WorkOrderState]] = {
    Action.FILE: frozenset({S.REPORTED, S.REOPENED}),
    Action.DISPATCH: frozenset({S.FILED, S.RETURNED, S.REOPENED}),
    Action.SIGN: frozenset({S.DISPATCHED}),
    Action.RETURN: frozenset({S.DISPATCHED, S.SIGNED}),
    Action.EXTEND: frozenset({S.SIGNED, S.IN_PROGRESS, S.REWORK, S.EXTENDED}),
    Action.START: frozenset({S.SIGNED, S.EXTENDED, S.REWORK}),
    Action.RESOLVE: frozenset({S.SIGNED, S.IN_PROGRESS, S.EXTENDED, S.REWORK}),
    Action.VERIFY: frozenset({S.RESOLVED}),
    Action.CLOSE: frozenset({S.VERIFIED}),
    Action.MARK_FALSE_POSITIVE: OPEN_STATES - {S.REWORK},  # rework: verification saw it
    Action.REOPEN: frozenset({S.CLOSED, S.FALSE_POSITIVE}),
    Action.ESCALATE: OPEN_STATES,
}


class TransitionRefused(Exception):
    """An action that the work order's current state does not allow (HTTP 409)."""

    def __init__(
        self,
        order: WorkOrder,
        action: Action | str,
        detail: str = "",
    ) -> None:
        self.work_order_id = order.id
        self.state = order.state
        self.action = str(action)
        self.allowed = allowed_actions(order)
        self.detail = detail
        why = f": {detail}" if detail else ""
        super().__init__(
            f"work order {order.id} is {order.state.value}; cannot {self.action}{why}. "
            f"Allowed now: {', '.join(self.allowed) or 'nothing (terminal)'}"
        )


class ActionArgumentError(ValueError):
    """An action called with missing or inconsistent arguments (HTTP 422)."""


@dataclass(frozen=True)
class WorkOrderTransition:
    """One audit-trail record: who did what to which order, when and why.

    ``id`` is ``f"{work_order_id}.{seq}"`` so that a resent event upserts; ``data`` holds the
    action's particulars (department, due_at as ISO text, escalation unit) and is not to be
    mutated.
    """

    id: str
    work_order_id: str
    seq: int
    event: str
    from_state: WorkOrderState
    to_state: WorkOrderState
    actor: str
    time: datetime
    reason: str | None = None
    data: EventData = field(default_factory=dict)


@dataclass
class WorkOrder:
    """One problem being handled, with its evidence, owner, clock and audit trail.

    ``opened_at`` is when the problem was first reported; ``clock_started_at`` is when the
    current SLA clock started (the same, or the last reopen). ``escalated_levels`` are the
    levels taken since then, so the timer never whistles twice for one level.
    """

    id: str
    kind: AlertKind
    category_code: str
    department: str
    priority: int
    state: WorkOrderState
    opened_at: datetime
    due_at: datetime
    clock_started_at: datetime
    sla: SlaClock
    district: str
    street: str | None = None
    community: str | None = None
    category_name: str = ""
    escalation_level: str | None = None
    escalated_levels: list[str] = field(default_factory=list)
    alert_ids: list[str] = field(default_factory=list)
    events: list[WorkOrderTransition] = field(default_factory=list)
    reopen_count: int = 0
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    seq: int = 0

    @property
    def sla_tier(self) -> str:
        """The SLA tier id (``workflow.sla.tiers``) this order is timed by."""
        return self.sla.tier.id

    @property
    def sla_stopped_at(self) -> datetime | None:
        """When the SLA clock stopped: resolution, or dismissal as a false positive."""
        if self.state is S.FALSE_POSITIVE:
            return self.closed_at
        return self.resolved_at

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES


def allowed_actions(order: WorkOrder) -> list[str]:
    """The actions the order's current state allows, in :class:`Action` order."""
    allowed = [a.value for a in Action if order.state in ALLOWED_FROM[a]]
    if order.escalation_level == GRID_LEVELS[-1] and Action.ESCALATE in allowed:
        allowed.remove(Action.ESCALATE)
    return allowed


def as_message(order: WorkOrder, transition: WorkOrderTransition) -> WorkOrderEvent:
    """The wire message of one transition, for Kafka and MQTT consumers.

    Department, priority, due time and alerts are the order's current ones: call it right
    after the transition (the transition's own ``data`` keeps what the action changed).
    Built without validation: every field comes from the order and transition the
    workflow made (a stream worker builds thousands a second).
    """
    return WorkOrderEvent.model_construct(
        id=transition.id,
        work_order_id=order.id,
        event=transition.event,
        state=transition.to_state.value,
        actor=transition.actor,
        time=transition.time,
        reason=transition.reason,
        kind=order.kind,
        category=order.category_code,
        department=order.department,
        priority=order.priority,
        due_at=order.due_at,
        alert_ids=tuple(order.alert_ids),
    )
