"""One chaos rig for the whole chaos suite: a private embedded stack kept up by its
supervisor, the bridge and the worker as child processes, gateways behind a TCP proxy
(``benchmarks/chaos_rig.py``). Each case leaves the rig healthy for the next.

``CITYWATCH_CHAOS_PARTITION_S`` shortens the partition case (60 s by default, as the issue
asks); ``CITYWATCH_CHAOS_PG_DOWN_S`` the long database outage (35 s by default).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from benchmarks.chaos_rig import CaseResult, ChaosRig


@pytest.fixture(scope="package")
def chaos_rig() -> Iterator[ChaosRig]:
    with ChaosRig() as rig:
        yield rig


def assert_nothing_lost(result: CaseResult, rig: ChaosRig) -> None:
    """The oracle's verdict, with what it counted and the worker's last lines if not."""
    assert result.passed, f"{result.record()}\n--- worker log:\n{rig.logs('app')}"
    assert result.recovery_s is not None
