"""People's work-order events (written by the command center's API, straight into the
database) relayed to Kafka, so that systems consuming ``citywatch.workorder-events`` (a
12345 hotline platform) see every transition, not only the machine's.

The relay is an outbox read by feed position: one worker at a time (the position row is
locked ``FOR UPDATE SKIP LOCKED``) reads the events after the stored position whose actor is
a person, sends them, waits for Kafka's acks, then stores the new position in the same
transaction. A crash between send and commit resends (at least once; event ids are stable).
The machine's own events are published by the worker that made them and are skipped here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from citywatch.contracts import WorkOrderEvent
from citywatch.workorder.lifecycle import SYSTEM_ACTOR

RELAY = "kafka-workorder-events"
PAGE = 1000

_PEOPLES_EVENTS = """
SELECT e.feed_id, e.id, e.work_order_id, e.event, e.to_state, e.actor, e.time, e.reason,
       w.kind, w.category_code, w.department, w.priority, w.due_at
FROM workorder_events e JOIN work_orders w ON w.id = e.work_order_id
WHERE e.feed_id > %s AND e.actor <> %s ORDER BY e.feed_id LIMIT %s
"""


def as_message(row: dict[str, Any]) -> WorkOrderEvent:
    return WorkOrderEvent(
        id=row["id"], work_order_id=row["work_order_id"], event=row["event"],
        state=row["to_state"], actor=row["actor"], time=row["time"], reason=row["reason"],
        kind=row["kind"], category=row["category_code"], department=row["department"],
        priority=row["priority"], due_at=row["due_at"],
    )  # fmt: skip


async def relay_once(
    conn: AsyncConnection, send: Callable[[list[WorkOrderEvent]], Awaitable[None]]
) -> int:
    """Relay one page of people's events; returns how many were sent (0 also when another
    worker holds the relay). Call inside a transaction; ``send`` must return after the acks.
    """
    await conn.execute(
        """INSERT INTO feed_relays (name, feed_id)
           SELECT %s, COALESCE(max(feed_id), 0) FROM workorder_events
           ON CONFLICT (name) DO NOTHING""",
        (RELAY,),
    )  # the migration made the row; if someone deleted it, start from now
    cursor = await conn.execute(
        "SELECT feed_id FROM feed_relays WHERE name = %s FOR UPDATE SKIP LOCKED", (RELAY,)
    )
    row = await cursor.fetchone()
    if row is None:
        return 0
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_PEOPLES_EVENTS, (row[0], SYSTEM_ACTOR, PAGE))
        rows = await cur.fetchall()
    if not rows:
        return 0
    await send([as_message(r) for r in rows])
    await conn.execute(
        "UPDATE feed_relays SET feed_id = %s, updated_at = now() WHERE name = %s",
        (rows[-1]["feed_id"], RELAY),
    )
    return len(rows)
