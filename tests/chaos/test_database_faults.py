"""Database faults (issue 16): PostgreSQL stopped immediately mid-batch, and down longer
than the worker's pool timeout and retry cap: nothing dead-lettered, health says the
database is down, and the worker resumes by itself."""

from __future__ import annotations

import os

import pytest

from benchmarks import chaos_cases as cases
from benchmarks.chaos_rig import ChaosRig
from tests.chaos.conftest import assert_nothing_lost

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_postgres_immediate_stop_mid_batch_loses_nothing(chaos_rig: ChaosRig) -> None:
    """SIGQUIT to the postmaster mid-burst; the supervisor starts it again."""
    result = cases.postgres_immediate_stop(chaos_rig)
    assert_nothing_lost(result, chaos_rig)


def test_postgres_down_past_the_retry_budget_dead_letters_nothing_and_resumes(
    chaos_rig: ChaosRig,
) -> None:
    """The health file says down, nothing is dead-lettered, all stored once it is back."""
    seconds = float(os.environ.get("CITYWATCH_CHAOS_PG_DOWN_S", "35"))
    result = cases.postgres_down_long(chaos_rig, seconds)
    assert_nothing_lost(result, chaos_rig)
    assert "health said 'down' during the outage, 'up' after" in result.notes
    assert "dead-lettered during the outage: 0" in result.notes
