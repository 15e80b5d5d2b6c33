"""The handler of the telemetry, status and evidence lanes: a batch's messages of one kind
stored in one step, nothing answered.

These messages make no work orders and get no receipts (a gateway does not keep them in its
outbox), so storing them is all there is: in the worker, one transaction per batch, retried
through database outages (:meth:`~citywatch.stream.worker_db.WorkerDatabase.store_batch`).
Every write is an idempotent upsert, so a batch redelivered after a crash changes nothing.
A status (a last will included) is timed on the bridge's clock: see :func:`on_arrival_clock`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from faust.types import Message
from psycopg import AsyncConnection

from citywatch.contracts import Status
from citywatch.contracts.messages import WireModel
from citywatch.stream.intake import Validated, received_at
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
        items: list[M] = []
        for record, message in batch:
            if isinstance(message, Status):
                message = on_arrival_clock(record, message)
            if isinstance(message, self.kind):
                items.append(message)
        self.counters[f"{self.name}.stored"] += await self.store(items)


def on_arrival_clock(record: Message, status: Status) -> Status:
    """The status timed when the bridge received it (its Kafka timestamp), not when the
    gateway wrote it.

    A last will is written when the gateway connects and delivered by the broker when the
    connection dies, so its own time is older than the "online" sent just after it, and an
    ordering by that time ignored every will: a dead gateway stayed online. A device's
    retained status topic is delivered in the order the broker took its messages, so the
    bridge's clock orders them truly (and one clock for all gateways, whatever their skew).
    A record without a timestamp keeps the gateway's time.
    """
    arrived = received_at(record)
    if arrived is None or arrived == status.event_time:
        return status
    return status.model_copy(update={"event_time": arrived})


async def upsert_statuses(conn: AsyncConnection, statuses: list[Status]) -> int:
    """Record a batch of devices' online/offline states (a newer one is never overwritten);
    how many statuses were given."""
    for status in statuses:
        await upsert_status(conn, status)
    return len(statuses)
