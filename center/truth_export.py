"""Verdicts feed the back-test: what the duty officers decided about a camera's work orders,
written as the truth file ``citywatch edge replay --truth`` reads.

A camera order's verdict is its latest deciding event: ``false_positive`` (误报) says the
camera saw nothing worth an order; ``resolved``, ``verified`` or ``closed`` (handled as a real
problem) say it was right. Orders with neither (still open) are not exported.

Each episode of a confirmed order on that camera becomes one truth line (JSON: ``kind``,
``zone``, ``start`` and ``end`` in wall time, ``expected_delay_s``). The condition began
before the alert: a dwell rule fires ``dwell_s`` after the object stopped, so the line
starts then and expects that delay; the episode's ``end`` alert, when there is one, ends it.
A false positive is a ``#`` comment line (the reader skips it): it is absent from the truth,
so a replayed rule that still raises it scores a false positive, and the file says why.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from pydantic import BaseModel

CONFIRMING = ("resolved", "verified", "closed", "confirmed")
DISMISSING = ("false_positive",)


class TruthExport(BaseModel):
    camera: str
    since: datetime
    until: datetime
    confirmed_orders: int
    false_positive_orders: int
    events: int
    """Truth lines (one per confirmed episode)."""
    text: str
    """The truth file itself (JSON lines and # comments)."""


DECIDING_VERDICT = """
JOIN LATERAL (
    SELECT e.event, e.actor, e.time, e.reason FROM workorder_events e
    WHERE e.work_order_id = o.id AND e.event = ANY(%(deciding)s)
    ORDER BY e.seq DESC LIMIT 1
) v ON true
"""
"""Joins order ``o`` to its verdict ``v`` (event, actor, time, reason): its latest deciding
event; orders without one drop out. Pass ``deciding`` = ``[*CONFIRMING, *DISMISSING]``.
Shared with the training export (:mod:`.training_export`), so both read one verdict."""

_VERDICTS = (
    """
WITH camera_orders AS (
    SELECT DISTINCT w.id, w.kind, w.opened_at
    FROM work_orders w
    JOIN work_order_alerts l ON l.work_order_id = w.id
    JOIN alerts a ON a.id = l.alert_id
    WHERE a.device_id = %(camera)s AND a.device_kind = 'camera'
          AND w.opened_at >= %(since)s AND w.opened_at < %(until)s
)
SELECT o.id, o.kind, o.opened_at, v.event AS verdict, v.actor, v.time AS decided_at, v.reason
FROM camera_orders o"""
    + DECIDING_VERDICT
    + """ORDER BY o.opened_at, o.id
"""
)

_EPISODES = """
SELECT l.work_order_id, a.episode_id, a.kind, a.zone,
       min(a.event_time) FILTER (WHERE a.phase = 'start') AS started,
       min(a.event_time) AS first_seen,
       max(a.event_time) FILTER (WHERE a.phase = 'end') AS ended,
       max((a.attributes->>'dwell_s')::float8)
           FILTER (WHERE a.phase = 'start' AND jsonb_typeof(a.attributes->'dwell_s') = 'number')
           AS dwell_s
FROM work_order_alerts l JOIN alerts a ON a.id = l.alert_id
WHERE l.work_order_id = ANY(%(orders)s) AND a.device_id = %(camera)s
GROUP BY l.work_order_id, a.episode_id, a.kind, a.zone
ORDER BY started NULLS LAST, first_seen, a.episode_id
"""


def truth_line(episode: dict[str, Any]) -> dict[str, Any]:
    """The truth event of one confirmed episode (see the module docstring)."""
    fired: datetime = episode["started"] or episode["first_seen"]
    delay_s = float(episode["dwell_s"] or 0.0)
    line: dict[str, Any] = {"kind": episode["kind"]}
    if episode["zone"]:
        line["zone"] = episode["zone"]
    line["start"] = (fired - timedelta(seconds=delay_s)).isoformat()
    if episode["ended"] is not None and episode["ended"] >= fired:
        line["end"] = episode["ended"].isoformat()
    line["expected_delay_s"] = round(delay_s, 3)
    return line


def _comment(text: str) -> str:
    return "# " + " ".join(text.split())


async def export_truth(
    conn: AsyncConnection, camera: str, *, since: datetime, until: datetime
) -> TruthExport:
    """The truth file of ``camera`` from the verdicts on orders opened in [since, until)."""
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(_VERDICTS, {"camera": camera, "since": since, "until": until,
                                         "deciding": [*CONFIRMING, *DISMISSING]})  # fmt: skip
        verdicts = await cursor.fetchall()
        await cursor.execute(_EPISODES, {"orders": [v["id"] for v in verdicts], "camera": camera})
        episodes = await cursor.fetchall()
    by_order: dict[str, list[dict[str, Any]]] = {}
    for episode in episodes:
        by_order.setdefault(episode["work_order_id"], []).append(episode)
    confirmed = [v for v in verdicts if v["verdict"] in CONFIRMING]
    dismissed = [v for v in verdicts if v["verdict"] in DISMISSING]
    lines = [
        _comment(
            f"truth for camera {camera} from the duty officers' verdicts on orders opened"
            f" {since.isoformat()} – {until.isoformat()}: {len(confirmed)} confirmed,"
            f" {len(dismissed)} false positive"
        ),
        _comment(
            "for `citywatch edge replay --camera CAMERA --truth FILE`; a false positive"
            " is a comment: nothing should be raised there"
        ),
    ]
    events = 0
    for verdict in verdicts:
        decided = (f"order {verdict['id']} ({verdict['kind']}), {verdict['verdict']} by"
                   f" {verdict['actor']} at {verdict['decided_at'].isoformat()}")  # fmt: skip
        if verdict["verdict"] in DISMISSING:
            for episode in by_order.get(verdict["id"], []):
                where = f" in {episode['zone']}" if episode["zone"] else ""
                fired = episode["started"] or episode["first_seen"]
                lines.append(_comment(f"false positive: {episode['kind']}{where} at"
                                      f" {fired.isoformat()}; {decided}: {verdict['reason']}"))  # fmt: skip
            continue
        for episode in by_order.get(verdict["id"], []):
            lines.append(_comment(decided))
            lines.append(json.dumps(truth_line(episode), ensure_ascii=False))
            events += 1
    return TruthExport(
        camera=camera, since=since, until=until, confirmed_orders=len(confirmed),
        false_positive_orders=len(dismissed), events=events, text="\n".join(lines) + "\n",
    )  # fmt: skip
