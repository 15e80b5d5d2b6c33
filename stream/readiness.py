"""Whether the stream worker's in-memory state agrees with the database, and reading it
again when it may not.

The alert processor's open work orders and dedup state are a cache of what the database
committed. Three things make it stale: a database step that failed (it may have changed the
cache before its transaction rolled back), a person acting on the same work orders (the
command center), and partitions arriving from another worker with the orders it opened for
them. Each marks it stale here; the next database step reads it again first, once however
many steps are waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from faust.types import TP


class Readiness:
    """Tracks the state's freshness and runs ``rebuild`` (open the pool, read the state)
    when a step needs it fresh."""

    def __init__(self, rebuild: Callable[[], Awaitable[None]]) -> None:
        self.rebuild = rebuild
        self._lock = asyncio.Lock()
        self._ready = asyncio.Event()
        self._held: set[TP] = set()  # the partitions of the last assignment

    @property
    def ready(self) -> bool:
        """Whether the state was read and nothing made it stale since."""
        return self._ready.is_set()

    def invalidate(self) -> None:
        """Mark the state stale: the next step reads it again first."""
        self._ready.clear()

    async def ensure(self) -> None:
        """Rebuild the state unless it is fresh; once for all the steps waiting on it (a
        rebuild that fails leaves it stale, for the next step to try again)."""
        if self._ready.is_set():
            return
        async with self._lock:
            if self._ready.is_set():
                return
            await self.rebuild()
            self._ready.set()

    def partitions_assigned(self, assigned: set[TP]) -> None:
        """Partitions that come here from another worker come with the work orders it opened
        for them, which this worker's memory does not hold (it would open a second order for
        the same spot): read the state again before the next batch. The previous owner has
        committed everything it acknowledged: Faust waits for each worker's records in hand
        to be acknowledged before partitions are assigned again. A rebalance that leaves
        this worker what it had (another one joined or left elsewhere) reads nothing."""
        arrived = assigned - self._held
        self._held = set(assigned)
        if arrived:
            self.invalidate()
