"""The handler of the telemetry, status and evidence lanes: a batch's messages of one kind
stored in one step, nothing answered.

These messages make no work orders and get no receipts (a gateway does not keep them in its
outbox), so storing them is all there is: in the worker, one transaction per batch, retried
through database outages (:meth:`~citywatch.stream.worker_db.WorkerDatabase.store_batch`).
Every write is an idempotent upsert, so a batch redelivered after a crash changes nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from psycopg import AsyncConnection

from citywatch.contracts import Status
from citywatch.contracts.messages import WireModel
from citywatch.stream.intake import Validated
from citywatch.stream.sink import upsert_status

M = TypeVar("M", bound=WireModel)


class DeviceDataHandler(Generic[M]):
    """Stores the messages of ``kind`` in a batch with ``store`` (which returns how many
    were new) and counts them under ``{name}.stored``."""

    def __init__(
        self,
        kind: type[M],
        name: str,
        store: Callable[[list[M]], Awaitable[int]],
        counters: Counter[str],
    ) -> None:
        self.kind, self.name, self.store, self.counters = kind, name, store, counters

    async def __call__(self, batch: Sequence[Validated]) -> None:
        items = [m for _, m in batch if isinstance(m, self.kind)]
        self.counters[f"{self.name}.stored"] += await self.store(items)


async def upsert_statuses(conn: AsyncConnection, statuses: list[Status]) -> int:
    """Record a batch of devices' online/offline states (a newer one is never overwritten);
    how many statuses were given."""
    for status in statuses:
        await upsert_status(conn, status)
    return len(statuses)
