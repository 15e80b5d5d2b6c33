"""Short work-order numbers (DEMO-20261206-0042) for a whole batch of new orders at once.

The database numbers every new work-order row in a trigger (migration 0008): per row, a
lock, a look-up of the site and one update of the day's counter row. For the stream
worker's batches that was the most expensive statement of the transaction: thousands of
updates of one counter row in one transaction leave a chain of row versions that each
next update walks (measured: 1.2 s of a 20,000-order benchmark's 2.7 s in the database,
about 90 µs an order). Here the staged new orders of a batch are numbered in one
statement, with one counter update per day, under the same lock and with the same site,
zone and format as :sql:`citywatch_work_order_number`; the trigger then leaves a row that
has its number alone. Within a batch, numbers follow the opening time.
"""

from __future__ import annotations

from psycopg import AsyncConnection

NUMBERING_LOCK = 1668576372
"""The transaction lock every writer of numbers and feed positions takes first (0004, 0008)."""

_NUMBER_STAGED = """
WITH site AS (
    SELECT upper(coalesce(n.site,
                          (SELECT a.site FROM alerts a ORDER BY a.event_time DESC LIMIT 1),
                          'CW')) AS prefix,
           CASE WHEN n.site IS NULL THEN 'UTC' ELSE n.timezone END AS zone
    FROM (SELECT 1) AS one LEFT JOIN work_order_numbering n ON true
), fresh AS (
    SELECT s.id, site.prefix, (s.opened_at AT TIME ZONE site.zone)::date AS day, s.opened_at
    FROM {staged} s CROSS JOIN site
    WHERE s.number IS NULL AND NOT EXISTS (SELECT 1 FROM work_orders w WHERE w.id = s.id)
), ranked AS (
    SELECT id, prefix, day,
           row_number() OVER (PARTITION BY prefix, day ORDER BY opened_at, id) AS n,
           count(*) OVER (PARTITION BY prefix, day) AS taken
    FROM fresh
), counters AS (
    INSERT INTO work_order_number_days AS d (prefix, day, last)
    SELECT prefix, day, count(*) FROM fresh GROUP BY prefix, day
    ON CONFLICT (prefix, day) DO UPDATE SET last = d.last + EXCLUDED.last
    RETURNING d.prefix, d.day, d.last
)
UPDATE {staged} s SET number = r.prefix || '-' || to_char(r.day, 'YYYYMMDD') || '-'
    || CASE WHEN numbered.day_seq < 10000 THEN lpad(numbered.day_seq::text, 4, '0')
            ELSE numbered.day_seq::text END
FROM ranked r JOIN counters c ON (c.prefix, c.day) = (r.prefix, r.day)
CROSS JOIN LATERAL (SELECT c.last - r.taken + r.n AS day_seq) AS numbered
WHERE s.id = r.id
"""


async def number_staged(conn: AsyncConnection, staged: str) -> None:
    """Give the orders in the staging table ``staged`` that are not stored yet their numbers
    (the caller then inserts them with their ``number``)."""
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (NUMBERING_LOCK,))
    await conn.execute(_NUMBER_STAGED.format(staged=staged))
