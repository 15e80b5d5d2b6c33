"""The center's audit trail (``center_audit``, migration 0006): who changed what, from where.

Written in the same transaction as the change it records, so a change without its audit row
cannot commit. Read by admins through ``GET /api/v1/admin/audit``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

COMMAND_LINE = "command line"
CONFIG = "config"
MAX_PAGE = 500


@dataclass(frozen=True)
class Actor:
    """Who acts, and from which client address ('' where there is none)."""

    name: str
    source: str = ""


async def record(
    conn: AsyncConnection, actor: Actor, action: str, target: str = "", **detail: Any
) -> None:
    await conn.execute(
        "INSERT INTO center_audit (actor, source, action, target, detail)"
        " VALUES (%s, %s, %s, %s, %s)",
        (actor.name, actor.source, action, target, Jsonb(detail)),
    )


async def page(
    conn: AsyncConnection, *, limit: int, before: int | None, actor: str | None,
    action: str | None,
) -> dict[str, Any]:  # fmt: skip
    """Audit rows, newest first; ``next_before`` pages on (keyset by id)."""
    where, params = ["TRUE"], []
    for clause, value in (("id < %s", before), ("actor = %s", actor), ("action = %s", action)):
        if value is not None:
            where.append(clause)
            params.append(value)
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(
            "SELECT id, time, actor, source, action, target, detail FROM center_audit"
            f" WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT %s",
            [*params, limit + 1],
        )
        rows = await cursor.fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": rows, "next_before": rows[-1]["id"] if more and rows else None}
