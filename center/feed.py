"""The live feed of work-order events: PostgreSQL LISTEN/NOTIFY in, server-sent events out.

One :class:`Broadcaster` per API process listens on the ``workorder_events`` channel. A
notification is only a nudge: the broadcaster then reads the events after the last position
it delivered, in feed order, from the table itself, so a notification lost while the
listening connection was down costs nothing (it also reads every few seconds regardless).
Feed positions become visible in order (migration 0004), so reading "after N" never skips
an event that commits later with a smaller position.

A client subscribes *before* it reads its backlog (everything after its ``Last-Event-ID``)
from the database, then drains what the broadcaster queued for it, skipping positions it has
already sent: every event reaches it once, in order, across restarts of the API. A client that
falls too far behind is cut off and, reconnecting with its Last-Event-ID, catches up from the
table.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from citywatch.center.metrics import FEED_CLIENTS, FEED_CUT_OFF, FEED_EVENTS

log = logging.getLogger(__name__)

CHANNEL = "workorder_events"
PAGE = 500
POLL_S = 5.0
QUEUE_MAX = 5000
"""Events queued for one client before it is cut off as too slow (it then resumes by id)."""
STOP_S = 5.0
"""How long stopping waits for the reader and the listener before leaving them behind."""

_EVENTS_AFTER = """
SELECT e.feed_id, e.id, e.work_order_id, e.seq, e.event, e.from_state, e.to_state, e.actor,
       e.time, e.reason, e.data,
       w.kind, w.category_code, w.category_name, w.department, w.priority, w.state, w.due_at,
       w.opened_at, w.district, w.street, w.community, w.lat, w.lon, w.escalation_level,
       w.alert_count, w.number
FROM workorder_events e JOIN work_orders w ON w.id = e.work_order_id
WHERE e.feed_id > %s ORDER BY e.feed_id LIMIT %s
"""


RETRY_MS = 2000
"""How long a browser's EventSource waits before it reconnects."""


@dataclass(frozen=True)
class FeedEvent:
    feed_id: int
    data: str
    """The event as JSON text (one line: JSON escapes newlines)."""

    @cached_property
    def frame(self) -> bytes:
        """The whole server-sent-event frame, encoded once and sent as is to every client
        (the per-client cost of a delivery is then one socket write, shared with the other
        events queued for that client)."""
        return (
            f"id: {self.feed_id}\nevent: workorder\nretry: {RETRY_MS}\ndata: {self.data}\n\n"
        ).encode()


def resync_frame(head: int, asked: int) -> bytes:
    """The event that tells a client its position is past the feed's head (the database was
    restored or replaced): reload what you show, then follow on from ``head`` (its ``id``, so
    a browser resumes from there by itself)."""
    data = json.dumps({"head": head, "asked": asked})
    return f"id: {head}\nevent: resync\nretry: {RETRY_MS}\ndata: {data}\n\n".encode()


def _iso(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else value


def feed_event(row: Mapping[str, Any]) -> FeedEvent:
    """A feed event from a row of :data:`_EVENTS_AFTER`: the transition, and the work order
    as it is now (for a list that updates in place)."""
    order_keys = (
        "kind", "category_code", "category_name", "department", "priority", "state", "due_at",
        "opened_at", "district", "street", "community", "lat", "lon", "escalation_level",
        "alert_count", "number",
    )  # fmt: skip
    body = {
        "feed_id": row["feed_id"],
        "id": row["id"],
        "work_order_id": row["work_order_id"],
        "seq": row["seq"],
        "event": row["event"],
        "from_state": row["from_state"],
        "to_state": row["to_state"],
        "actor": row["actor"],
        "time": _iso(row["time"]),
        "reason": row["reason"],
        "data": row["data"],
        "work_order": {"id": row["work_order_id"]} | {k: _iso(row[k]) for k in order_keys},
    }
    return FeedEvent(row["feed_id"], json.dumps(body, ensure_ascii=False, separators=(",", ":")))


async def events_after(
    pool: AsyncConnectionPool, position: int, limit: int = PAGE
) -> list[FeedEvent]:
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(_EVENTS_AFTER, (position, limit))
        return [feed_event(row) for row in await cursor.fetchall()]


async def latest_position(pool: AsyncConnectionPool) -> int:
    async with pool.connection() as conn:
        cursor = await conn.execute("SELECT COALESCE(max(feed_id), 0) FROM workorder_events")
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


@dataclass(eq=False)
class Subscription:
    queue: asyncio.Queue[FeedEvent] = field(default_factory=lambda: asyncio.Queue(QUEUE_MAX))
    cut_off: bool = False


class Broadcaster:
    """Reads new feed events once per API process and hands them to every subscriber."""

    def __init__(self, pool: AsyncConnectionPool, database_url: str) -> None:
        self.pool = pool
        self.database_url = database_url
        self.position = 0
        self.subscribers: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self.listening = asyncio.Event()

    async def start(self) -> None:
        self.position = await latest_position(self.pool)
        self._task = asyncio.create_task(self._run(), name="feed-broadcaster")

    async def stop(self) -> None:
        """End the reader and the listener, and cut every subscriber off.

        Cancellation alone is not enough: one that lands while the pool hands the reader a
        connection can be lost (psycopg-pool, e.g. psycopg/psycopg#1345), and the API's
        shutdown then waited forever. The reader also checks a flag at every turn, and
        the wait is bounded."""
        self._stopping = True
        self._wake.set()
        if self._task:
            await _cancel_within(self._task, STOP_S, "reader")
        for subscription in self.subscribers:
            subscription.cut_off = True
            with contextlib.suppress(asyncio.QueueFull):  # a full queue wakes it anyway
                subscription.queue.put_nowait(FeedEvent(-1, ""))  # wake it to end

    def subscribe(self) -> Subscription:
        subscription = Subscription()
        self.subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self.subscribers.discard(subscription)

    async def _run(self) -> None:
        listener = asyncio.create_task(self._listen(), name="feed-listener")
        try:
            while not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_S)
                self._wake.clear()
                try:
                    await self._deliver_new()
                except psycopg.Error as exc:
                    log.warning("live feed: cannot read new events (%s); retrying", exc)
                    await asyncio.sleep(1.0)
        finally:
            await _cancel_within(listener, STOP_S, "LISTEN connection")

    async def _deliver_new(self) -> None:
        while True:
            batch = await events_after(self.pool, self.position)
            FEED_EVENTS.inc(len(batch))
            for event in batch:  # no await in here: a new subscriber sees all or none of it
                self.position = event.feed_id
                for subscription in list(self.subscribers):
                    try:
                        subscription.queue.put_nowait(event)
                    except asyncio.QueueFull:
                        FEED_CUT_OFF.inc()
                        subscription.cut_off = True
                        self.subscribers.discard(subscription)
            if len(batch) < PAGE:
                return

    async def _listen(self) -> None:
        """LISTEN on its own connection; reconnect with backoff; every notification wakes
        the reader."""
        delay = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.database_url, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    delay = 0.5
                    self._wake.set()  # catch up on whatever came while not listening
                    async for _ in conn.notifies():
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except psycopg.Error as exc:
                self.listening.clear()
                log.warning("live feed: LISTEN connection lost (%s); reconnecting", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)


async def _cancel_within(task: asyncio.Task[None], timeout_s: float, what: str) -> None:
    """Cancel ``task`` and wait for it to end, at most ``timeout_s`` (then log and move on)."""
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    if not done:
        log.warning("live feed: the %s did not stop within %.0f s; left behind", what, timeout_s)
    elif not task.cancelled() and task.exception() is not None:
        log.warning("live feed: the %s ended with %r", what, task.exception())


async def stream(broadcaster: Broadcaster, after: int | None) -> AsyncIterator[list[FeedEvent]]:
    """Every event after position ``after`` (or, with None, from now on), once and in order,
    in chunks: whatever is waiting for the client goes out in one write. Ends when the client
    is cut off as too slow or the server stops."""
    subscription = broadcaster.subscribe()
    FEED_CLIENTS.inc()
    try:
        sent = broadcaster.position if after is None else after
        if after is not None:
            while True:
                backlog = await events_after(broadcaster.pool, sent)
                if backlog:
                    yield backlog
                    sent = backlog[-1].feed_id
                if len(backlog) < PAGE:
                    break
        queue = subscription.queue
        while not subscription.cut_off:
            waiting = [await queue.get()]
            while not queue.empty() and len(waiting) < PAGE:
                waiting.append(queue.get_nowait())
            chunk = [e for e in waiting if e.feed_id > sent]
            if chunk:
                yield chunk
                sent = chunk[-1].feed_id
    finally:
        FEED_CLIENTS.dec()
        broadcaster.unsubscribe(subscription)
