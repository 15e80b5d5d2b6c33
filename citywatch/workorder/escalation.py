"""Escalation (提级会办, "吹哨") of work orders that run out of time (pure).

What a community cannot solve goes to the street office, then to the district (DOMAIN.md).
Each ``Sla.escalation`` step fires when a fraction of the order's SLA budget has elapsed
in the order's own clock (working time for a working-time tier): by default the community
at 0.8, the street at 1.0 (the deadline) and the district at 2.0. The budget is the time
from the clock's start to the current due time, so an approved extension moves the later
steps with the deadline; steps past 1.0 count on from the deadline itself, so a deadline
set outside working hours still fires its street step exactly at the deadline.

The Faust timer calls :func:`escalate_due` (or :func:`due_escalations` and then
``escalate`` per step) every few seconds: each level fires once, in order, never for a
resolved, verified, closed or dismissed order, and never below a level already reached.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

from citywatch.config.workflow import EscalationStep, Sla
from citywatch.workorder.lifecycle import (
    GRID_LEVELS,
    SYSTEM_ACTOR,
    WorkOrder,
    WorkOrderTransition,
    escalate,
)

DEFAULT_STEPS: tuple[EscalationStep, ...] = Sla().escalation


def escalation_time(
    order: WorkOrder, step: EscalationStep, budget: timedelta | None = None
) -> datetime:
    """When ``step`` falls due for ``order`` (aware UTC), from its current clock and deadline.

    ``budget`` (clock start to due time, in the order's clock) may be passed in when several
    steps are timed at once, to measure it only once.
    """
    clock, begin = order.sla, order.clock_started_at
    if budget is None:
        budget = clock.elapsed(begin, order.due_at)
    if step.after_fraction >= 1:
        return clock.add(order.due_at, budget * (step.after_fraction - 1))
    return clock.add(begin, budget * step.after_fraction)


def _ordered(steps: Sequence[EscalationStep]) -> list[EscalationStep]:
    return sorted(steps, key=lambda s: (s.after_fraction, GRID_LEVELS.index(s.level)))


def _pending(order: WorkOrder, steps: Sequence[EscalationStep]) -> Iterator[EscalationStep]:
    """Steps still to take, in firing order: above the level reached, and climbing."""
    if not order.is_open:
        return
    reached = GRID_LEVELS.index(order.escalation_level) if order.escalation_level else -1
    for step in _ordered(steps):
        rank = GRID_LEVELS.index(step.level)
        if rank > reached and step.level not in order.escalated_levels:
            reached = rank
            yield step


def escalation_schedule(
    order: WorkOrder, steps: Sequence[EscalationStep] = DEFAULT_STEPS
) -> list[tuple[EscalationStep, datetime]]:
    """Every step with the time it falls due, earliest first (for display and timers)."""
    return [(step, escalation_time(order, step)) for step in _ordered(steps)]


def due_escalations(
    order: WorkOrder, now: datetime, steps: Sequence[EscalationStep] = DEFAULT_STEPS
) -> list[EscalationStep]:
    """The steps due at ``now`` and not yet taken, lowest level first; none for an order
    that is no longer open. A step at or below the level already reached is skipped.
    """
    budget = order.sla.elapsed(order.clock_started_at, order.due_at)
    due = []
    for step in _pending(order, steps):
        if escalation_time(order, step, budget) > now:
            break  # due times grow with the fraction: nothing later is due either
        due.append(step)
    return due


def next_escalation_at(
    order: WorkOrder, steps: Sequence[EscalationStep] = DEFAULT_STEPS
) -> datetime | None:
    """When the next step falls due, or None when none is left; a timer can sleep till then
    (it changes only when the order is extended, reopened, escalated or handled).
    """
    step = next(_pending(order, steps), None)
    return None if step is None else escalation_time(order, step)


def escalate_due(
    order: WorkOrder,
    now: datetime,
    steps: Sequence[EscalationStep] = DEFAULT_STEPS,
    *,
    actor: str = SYSTEM_ACTOR,
) -> list[WorkOrderTransition]:
    """Apply every due step to ``order``: one ``escalated`` event per level, stamped ``now``."""
    return [
        escalate(
            order,
            actor=actor,
            time=now,
            level=step.level,
            reason=f"{step.after_fraction:g} of the SLA time limit elapsed",
        )
        for step in due_escalations(order, now, steps)
    ]
