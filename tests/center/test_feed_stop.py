"""The API's shutdown never waits forever on the live feed's reader."""

from __future__ import annotations

import asyncio
import time

import pytest
from psycopg_pool import AsyncConnectionPool

from citywatch.center import feed

pytestmark = [pytest.mark.integration]


def test_stop_ends_the_reader_even_when_a_cancellation_is_lost(
    center_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancellation that lands while the pool hands the reader a connection can vanish
    (psycopg-pool); the reader then still ends at its next turn, and stop() returns."""
    swallowed: list[bool] = []
    real_deliver = feed.Broadcaster._deliver_new

    async def deliver_losing_one_cancel(self: feed.Broadcaster) -> None:
        try:
            await asyncio.sleep(0.5)  # where the pool would be handing over a connection
        except asyncio.CancelledError:
            swallowed.append(True)  # lost, as in the pool's race
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
        await real_deliver(self)

    monkeypatch.setattr(feed.Broadcaster, "_deliver_new", deliver_losing_one_cancel)

    async def scenario() -> float:
        async with AsyncConnectionPool(center_db, min_size=1, open=False) as pool:
            await pool.open(wait=True, timeout=30)
            broadcaster = feed.Broadcaster(pool, center_db)
            await broadcaster.start()
            await asyncio.wait_for(broadcaster.listening.wait(), 10)
            broadcaster._wake.set()  # the reader goes to read, and the cancel lands there
            await asyncio.sleep(0.1)
            begun = time.monotonic()
            await broadcaster.stop()
            assert broadcaster._task is not None and broadcaster._task.done()
            return time.monotonic() - begun

    took = asyncio.run(scenario())
    assert swallowed == [True]
    assert took < feed.STOP_S
