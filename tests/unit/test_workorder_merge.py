"""并单: a work order folded into an older one of the same problem (issue 18)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from citywatch.workorder.lifecycle import WorkOrderState, allowed_actions, dispatch
from citywatch.workorder.merge import fold_into
from tests.unit.test_workorders import T0, new_order


def test_folding_moves_the_alerts_and_writes_both_timelines() -> None:
    """The older order takes the alerts with an ``absorbed`` event; the younger is ``merged``,
    terminal, naming where its alerts went; nothing is removed from either."""
    keep = new_order(id="wo-live", alert_ids=["live.0", "live.1"])
    dispatch(keep, actor="citywatch", time=T0, department="urban-mgmt")
    gone = new_order(id="wo-backlog", alert_ids=["gw.0", "gw.1", "live.1"], priority=2)
    gone_events = len(gone.events)
    later = T0 + timedelta(minutes=45)
    kept, folded = fold_into(gone, keep, time=later)
    assert keep.alert_ids == ["live.0", "live.1", "gw.0", "gw.1"]
    assert keep.state is WorkOrderState.DISPATCHED  # people's work on it goes on
    assert keep.priority == 2
    assert (kept.event, kept.work_order_id, kept.data) == (
        "absorbed",
        "wo-live",
        {"work_order": "wo-backlog", "alerts": 2},
    )
    assert (folded.event, folded.to_state, folded.data["into"]) == (
        "merged",
        WorkOrderState.MERGED,
        "wo-live",
    )
    assert gone.state is WorkOrderState.MERGED and not gone.is_open
    assert gone.closed_at == later.astimezone(later.tzinfo)
    assert len(gone.events) == gone_events + 1 and gone.alert_ids == ["gw.0", "gw.1", "live.1"]
    assert allowed_actions(gone) == []  # terminal: the problem lives on in wo-live


def test_an_order_never_folds_into_itself() -> None:
    """Folding an order into itself is a caller's bug, refused loudly."""
    order = new_order()
    with pytest.raises(ValueError, match="into itself"):
        fold_into(order, order, time=T0)


def test_a_linked_recurrence_says_so_in_its_reported_event() -> None:
    """A new_linked recurrence (复发) names the earlier order in its first event."""
    order = new_order(id="wo-2", recurrence_of="wo-1")
    reported = order.events[0]
    assert reported.data["recurrence_of"] == "wo-1"
    assert reported.reason == "recurrence (复发) of wo-1"
    assert "recurrence_of" not in new_order().events[0].data
