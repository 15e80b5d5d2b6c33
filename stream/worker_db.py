"""The stream worker's side of PostgreSQL: its pool, the alert processor's in-memory state
read from the database, and the steps the handlers and timers run there.

Why one object: the processor's state (open work orders, the dedup engine) is a cache of
what the database committed, shared by the alert lane and the SLA tick, and several events
make it stale: a database outage (a failed transaction may have changed it), a person
acting on the same work orders, partitions arriving from another worker with the orders it
opened (:mod:`citywatch.stream.readiness` tracks that), another worker extending an incident
both hold near a cell border (its version moved: see :mod:`citywatch.stream.dedup_claim`). Each step here runs in one
transaction through :class:`~citywatch.stream.db_retry.DatabaseRetry`, which reads the
state again before a retry; the steps that touch the state hold one lock, so the lane and
the tick never interleave.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import TypeVar

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from citywatch.contracts import WorkOrderEvent
from citywatch.stream.center_relay import relay_once
from citywatch.stream.clock import Clock, utc_now
from citywatch.stream.db_retry import RETRY_FIRST_S, RETRY_MAX_S, DatabaseRetry
from citywatch.stream.dedup_claim import PlaceClaims, refresh_moved
from citywatch.stream.heap import settled
from citywatch.stream.metrics import COMMIT_SECONDS
from citywatch.stream.processor import AlertProcessor, Outcome
from citywatch.stream.readiness import DatabaseHealth, Readiness
from citywatch.stream.sink import AlertRow

log = logging.getLogger(__name__)
T = TypeVar("T")
POOL_OPEN_TIMEOUT_S = 30.0
OUTAGES = (psycopg.OperationalError, psycopg.errors.AdminShutdown)
"""What :class:`DatabaseRetry` retries as an outage, and :class:`DatabaseHealth` reports."""


class WorkerDatabase:
    """The pool, the processor's state and the worker's database steps (see the module doc).

    ``clock`` gives the SLA tick its ``now``; the retry delays are :class:`DatabaseRetry`'s.
    Nothing connects until the first step runs.
    """

    def __init__(
        self,
        pool: AsyncConnectionPool,
        processor: AlertProcessor,
        *,
        clock: Clock = utc_now,
        retry_first_s: float = RETRY_FIRST_S,
        retry_max_s: float = RETRY_MAX_S,
        health: DatabaseHealth | None = None,
        claims: PlaceClaims | None = None,
    ) -> None:
        self.pool, self.processor, self.clock = pool, processor, clock
        self.health = health
        self.claims = claims  # several partitions: alerts near a cell border claim their place
        self.state_lock = asyncio.Lock()  # the processor's state: the alert lane and the tick
        self._pool_open = False
        self._pool_failed = False  # an outage since the pool was opened
        self._reopen_timeout_s = min(POOL_OPEN_TIMEOUT_S, max(1.0, retry_max_s))
        self.readiness = Readiness(self._rebuild)
        self.retry = DatabaseRetry(
            self.readiness.ensure, self.readiness.invalidate, first_delay_s=retry_first_s,
            max_delay_s=retry_max_s,
        )  # fmt: skip

    async def _rebuild(self) -> None:
        """Open the pool (the first time, or a new one after an outage) and read the
        processor's state from the database."""
        async with self._reporting():
            if self._pool_failed:
                await self._replace_pool()
            if not self._pool_open:
                first = self.readiness.rebuilds == 0
                timeout = POOL_OPEN_TIMEOUT_S if first else self._reopen_timeout_s
                await self.pool.open(wait=True, timeout=timeout)
                self._pool_open = True
            with settled():  # the state read is frozen: the collector walks it no more
                async with self.state_lock, self.pool.connection() as conn:
                    restored = await self.processor.restore(conn, self.clock())
        log.info("restored %d work orders and their dedup state from the database", restored)

    async def _replace_pool(self) -> None:
        """A new pool for the old one, after an outage: the old pool's own reconnection
        doubles its wait without a cap (psycopg_pool's ``AttemptWithBackoff``: 1, 2, 4, …
        32 s after half a minute down) and stops after ``reconnect_timeout``, so after a
        long outage it would reach a database that is back only much later, or never. A new
        pool connects at once; the retry's own backoff (capped) paces the attempts."""
        old = self.pool
        self.pool = AsyncConnectionPool(
            old.conninfo, kwargs=old.kwargs, min_size=old.min_size, max_size=old.max_size,
            open=False,
        )  # fmt: skip
        self._pool_open = self._pool_failed = False
        try:
            await old.close(timeout=1.0)
        except Exception as exc:  # the old pool's connections are dead anyway
            log.debug("closing the pool replaced after an outage: %s", exc)

    @asynccontextmanager
    async def _reporting(self) -> AsyncIterator[None]:
        """Tell :attr:`health` whether the database answered the enclosed step, and
        remember an outage (the next rebuild replaces the pool)."""
        try:
            yield
        except OUTAGES as exc:
            self._pool_failed = True
            if self.health is not None:
                self.health.unreachable(exc)
            raise
        if self.health is not None:
            self.health.reached()

    async def store_alerts(self, rows: Sequence[AlertRow]) -> Outcome:
        """The alert lane's store step: ``rows`` stored and folded into work orders, after
        the places of those near a cell border are claimed (:mod:`~citywatch.stream.dedup_claim`)."""
        claims = self.claims

        async def store(conn: AsyncConnection) -> Outcome:
            if claims is not None:
                await claims.claim(conn, rows, self.clock())
            return await self.processor.handle(conn, rows)

        return await self._transact(f"{len(rows)} alerts", store, state=True)

    async def tick(self) -> Outcome:
        """Close quiet incidents and escalate overdue work orders, as of the clock's now
        (with several workers, after reading again what the others changed)."""
        claims = self.claims

        async def tick(conn: AsyncConnection) -> Outcome:
            if claims is not None:
                await refresh_moved(conn, self.processor)
            return await self.processor.tick(conn, self.clock())

        return await self._transact("the SLA tick", tick, state=True)

    async def store_batch(
        self,
        name: str,
        insert: Callable[[AsyncConnection, list[T]], Awaitable[int]],
        items: list[T],
    ) -> int:
        """A batch of ``name`` (telemetry, status, evidence) stored with ``insert``; what it
        returns (how many were new)."""
        return await self._transact(
            f"{len(items)} {name}", lambda conn: insert(conn, items), state=False
        )

    async def relay(self, send: Callable[[list[WorkOrderEvent]], Awaitable[None]]) -> int:
        """One page of people's work-order events relayed with ``send``; how many. Nothing
        before the state was first read (the pool is opened by the first batch or tick)."""
        if not self.readiness.ready:
            return 0
        return await self._transact("the relay", lambda conn: relay_once(conn, send), state=False)

    async def _transact(
        self, what: str, work: Callable[[AsyncConnection], Awaitable[T]], *, state: bool
    ) -> T:
        """``work`` in one transaction, retried through outages; ``state``: it reads or
        changes the processor's state (then it holds the state lock)."""
        lock: AbstractAsyncContextManager[object] = self.state_lock if state else nullcontext()

        async def step() -> T:
            async with self._reporting(), lock:
                with COMMIT_SECONDS.time():  # the connection, the work and the commit
                    async with self.pool.connection() as conn, conn.transaction():
                        return await work(conn)

        return await self.retry.run(what, step)
