"""A database step retried through an outage, on state rebuilt from what committed.

Every step the stream worker runs against PostgreSQL (a batch of alerts, of telemetry, the
SLA tick, the relay) must outlast a database restart without losing or dead-lettering a
record: the record has done nothing wrong. Nor may the retry act on memory the database no
longer agrees with: a transaction that failed may have changed the processor's in-memory
work orders before it rolled back. So a failed step marks the state stale, waits (doubling
the wait up to a cap), and runs again once the state has been read back from the database.
A step refused because a person changed the same work orders meanwhile
(:class:`~citywatch.storage.workorders.StaleWorkOrders`) runs again at once, on state
read again. Anything else is not an outage and is raised to the caller.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import psycopg

from citywatch.storage.workorders import StaleWorkOrders

log = logging.getLogger(__name__)
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 30.0
T = TypeVar("T")


class DatabaseRetry:
    """Runs database steps until they succeed through outages (see the module doc).

    ``ensure_ready`` opens the pool and rebuilds the in-memory state when it is stale;
    ``invalidate`` marks it stale; ``sleep`` is the wait between tries (tests pass one that
    records the delays).
    """

    def __init__(
        self,
        ensure_ready: Callable[[], Awaitable[None]],
        invalidate: Callable[[], None],
        *,
        first_delay_s: float = RETRY_FIRST_S,
        max_delay_s: float = RETRY_MAX_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.ensure_ready, self.invalidate, self.sleep = ensure_ready, invalidate, sleep
        self.first_delay_s, self.max_delay_s = first_delay_s, max_delay_s

    async def run(self, what: str, step: Callable[[], Awaitable[T]]) -> T:
        """``step``'s result, once it ran on ready state; ``what`` names it in the logs."""
        delay = self.first_delay_s
        while True:
            try:
                await self.ensure_ready()
                return await step()
            except StaleWorkOrders as exc:
                # A person acted on these orders (command center) since this worker read
                # them: start over from what the database holds, at once.
                log.info("%s; reloading work orders from the database and retrying", exc)
                self.invalidate()
            except (psycopg.OperationalError, psycopg.errors.AdminShutdown) as exc:
                log.error(
                    "database unavailable while storing %s (%s); retrying in %.1fs",
                    what,
                    exc,
                    delay,
                )
                self.invalidate()  # rebuild in-memory state from what actually committed
                await self.sleep(delay)
                delay = min(delay * 2, self.max_delay_s)
