"""Short work-order numbers given to a whole batch of new orders at once (issue 22), on the
real PostgreSQL: the same numbers the per-row trigger of migration 0008 gives, counting on
from and for it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from citywatch.config import CitywatchConfig
from citywatch.contracts import Alert, DeviceRef, Location
from citywatch.storage.workorders import record_numbering_site
from citywatch.stream.processor import AlertProcessor
from citywatch.stream.sink import AlertRow
from tests.conftest import fresh_database

pytestmark = pytest.mark.integration

CAMERA = DeviceRef(site="demo", kind="camera", id="cam-renmin-101")
LATE = datetime(2026, 12, 6, 15, 0, tzinfo=UTC)  # 23:00 on the 6th in Shanghai
NUMBER = re.compile(r"^DEMO-(\d{8})-(\d{4})$")


@pytest.fixture(scope="module")
def database(stack) -> Iterator[str]:  # type: ignore[no-untyped-def]
    with fresh_database(stack, "numbers") as url:
        yield url


def sighting(n: int, when: datetime, seq: int = 0) -> AlertRow:
    """An alert of episode ``n``, 5 km from every other episode: an order of its own."""
    alert = Alert(
        id=f"num.{n}.{seq}", episode_id=f"num.{n}", seq=seq, device=CAMERA,
        kind="illegal_parking", rule="r", phase="update" if seq else "start", event_time=when,
        location=Location(lat=31.0 + 0.05 * n, lon=119.4), confidence=0.9,
    )  # fmt: skip
    return AlertRow(alert, None, "d-shifan")


async def numbers(conn: psycopg.AsyncConnection) -> dict[str, str]:
    cursor = await conn.execute("SELECT id, number FROM work_orders")
    return dict(await cursor.fetchall())


async def test_a_batch_of_new_orders_is_numbered_by_day_and_time_after_the_trigger(
    database: str, demo_config: CitywatchConfig
) -> None:
    """Orders of a batch count on from a trigger-numbered order, per local day, in opening
    order; an order saved again keeps its number."""
    processor = AlertProcessor(demo_config)
    async with await psycopg.AsyncConnection.connect(database) as conn:
        async with conn.transaction():
            await record_numbering_site(conn, "demo", "Asia/Shanghai")
            await conn.execute(  # numbered by migration 0008's trigger, one row
                """INSERT INTO work_orders (id, kind, category_code, department, priority,
                       state, sla_tier, opened_at, clock_started_at, last_activity)
                   VALUES ('by-hand', 'illegal_parking', '05-05', 'urban-mgmt', 3, 'filed',
                           'standard', %s, %s, %s)""",
                (LATE,) * 3,
            )  # fmt: skip
        batch = [sighting(n, LATE + timedelta(minutes=30 * (3 - n))) for n in range(4)]
        async with conn.transaction():  # 00:30 on the 7th, then 00:00, 23:30, 23:00 on the 6th
            await processor.handle(conn, batch)
        async with conn.transaction():  # the first order again, and one more on the 7th
            await processor.handle(conn, [sighting(0, LATE + timedelta(minutes=95), seq=1),
                                          sighting(9, LATE + timedelta(hours=2))])  # fmt: skip
        stored = await numbers(conn)
    parsed = {order: NUMBER.match(number).groups() for order, number in stored.items()}  # type: ignore[union-attr]
    assert parsed["by-hand"] == ("20261206", "0001")
    by_alert = {order.removeprefix("inc.num.").split(".")[0]: p for order, p in parsed.items()}
    assert [by_alert[n] for n in ("3", "2", "1", "0", "9")] == [
        ("20261206", "0002"), ("20261206", "0003"), ("20261207", "0001"),
        ("20261207", "0002"), ("20261207", "0003"),
    ]  # fmt: skip
