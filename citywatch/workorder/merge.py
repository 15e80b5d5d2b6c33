"""并单: folding a work order into an older one of the same problem (pure, like lifecycle).

Late data (a gateway's backlog after an outage) can show that two work orders are one
problem. The younger is folded into the older: its alerts move, both timelines say so, and
nothing is deleted — the folded order stays, terminal, naming the order that holds its alerts
now, so a receipt or a query code people already have still leads to the problem.
"""

from __future__ import annotations

from datetime import datetime

from citywatch.workorder.lifecycle import aware_utc, record_transition
from citywatch.workorder.order import SYSTEM_ACTOR, WorkOrder, WorkOrderState, WorkOrderTransition

__all__ = ["fold_into"]

REASON = "the same problem (late data): merged"


def fold_into(
    gone: WorkOrder, keep: WorkOrder, *, time: datetime, actor: str = SYSTEM_ACTOR
) -> list[WorkOrderTransition]:
    """Fold ``gone`` into ``keep``: an ``absorbed`` event on ``keep`` (its state unchanged,
    the alerts attached) and a ``merged`` event on ``gone`` (terminal). Returns both."""
    if gone.id == keep.id:
        raise ValueError(f"work order {gone.id} cannot be merged into itself")
    time = aware_utc(time)
    moved = [a for a in gone.alert_ids if a not in keep.alert_ids]
    keep.alert_ids.extend(moved)
    keep.priority = min(keep.priority, gone.priority)
    kept = record_transition(
        keep, "absorbed", keep.state, actor=actor, time=time, reason=REASON,
        data={"work_order": gone.id, "alerts": len(moved)},
    )  # fmt: skip
    if gone.closed_at is None:
        gone.closed_at = time
    folded = record_transition(
        gone, "merged", WorkOrderState.MERGED, actor=actor, time=time, reason=REASON,
        data={"into": keep.id, "alerts": len(gone.alert_ids)},
    )  # fmt: skip
    return [kept, folded]
