"""Processes killed and bad or repeated input (issue 16): the gateway and the worker
SIGKILLed mid-stream, a poison record among good ones, one alert replayed 1,000 times."""

from __future__ import annotations

import pytest

from benchmarks import chaos_cases as cases
from benchmarks.chaos_rig import ChaosRig
from tests.chaos.conftest import assert_nothing_lost

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_edge_agent_kill_9_with_200_alerts_in_its_outbox_drains_after_restart(
    chaos_rig: ChaosRig,
) -> None:
    """The gateway process dies holding unreceipted alerts; its successor sends them all."""
    result = cases.edge_agent_kill9(chaos_rig)
    assert_nothing_lost(result, chaos_rig)
    left = int(result.notes[0].split()[0])
    assert left > 0, "the kill came after every receipt: the case proved nothing"


def test_worker_kill_9_between_database_and_offset_commit_changes_nothing(
    chaos_rig: ChaosRig,
) -> None:
    """Records stored but not committed are read again: no second row, no second order."""
    result = cases.worker_kill9_after_db_commit(chaos_rig)
    assert_nothing_lost(result, chaos_rig)


def test_a_poison_record_mid_batch_is_refused_alone(chaos_rig: ChaosRig) -> None:
    """The NUL alert is quarantined by its gateway; its 20 neighbours are stored."""
    result = cases.poison_mid_batch(chaos_rig)
    assert_nothing_lost(result, chaos_rig)
    assert result.receipts == 21  # 20 stored and the poison's rejection


def test_one_alert_replayed_1000_times_is_one_row_one_order_1000_receipts(
    chaos_rig: ChaosRig,
) -> None:
    """A device replaying an alert changes nothing but the receipts it gets."""
    result = cases.replay_one_alert(chaos_rig, 1000)
    assert_nothing_lost(result, chaos_rig)
    assert result.receipts >= 1000
