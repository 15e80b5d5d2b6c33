"""An alert id names one alert forever, on the real PostgreSQL (issue 16, finding 3).

The same id with another event time used to be stored twice (the key is ``(id,
event_time)``), and the same id with other content got a "stored" receipt while the new
content was silently dropped. Now both are conflicts the worker dead-letters with both
versions; an identical redelivery stays a no-op.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from citywatch.config import CitywatchConfig
from citywatch.contracts import Alert, DeviceRef, Location
from citywatch.stream.processor import AlertProcessor
from citywatch.stream.sink import AlertRow, KafkaPosition, insert_alerts
from tests.conftest import fresh_database

pytestmark = pytest.mark.integration

SENSOR = DeviceRef(site="demo", kind="sensor", id="wl-underpass-01")
WHEN = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)


def alert(alert_id: str, when: datetime = WHEN, depth_cm: float = 20.0) -> Alert:
    return Alert(id=alert_id, episode_id=alert_id.rsplit(".", 1)[0], seq=0, device=SENSOR,
                 kind="waterlogging", rule="depth_level", phase="start", event_time=when,
                 location=Location(lat=31.43, lon=119.48), confidence=0.9,
                 attributes={"depth_cm": depth_cm, "level": "lane"})  # fmt: skip


def row(message: Alert, offset: int = 0) -> AlertRow:
    return AlertRow(message, KafkaPosition("citywatch.alerts", 0, offset), "d-shifan")


@pytest.fixture(scope="module")
def database(stack) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A fresh, migrated database of its own on the session's PostgreSQL."""
    with fresh_database(stack, "ids") as url:
        yield url


@pytest.fixture
async def conn(database: str) -> AsyncIterator[psycopg.AsyncConnection]:
    async with await psycopg.AsyncConnection.connect(database) as connection:
        yield connection


def unique_id() -> str:
    return f"wl-underpass-01.{uuid.uuid4().hex[:12]}.0"


async def rows_of(conn: psycopg.AsyncConnection, alert_id: str) -> list[tuple[object, ...]]:
    cursor = await conn.execute(
        "SELECT event_time, attributes FROM alerts WHERE id = %s", (alert_id,)
    )
    return await cursor.fetchall()


async def test_an_identical_redelivery_changes_nothing(conn: psycopg.AsyncConnection) -> None:
    """The same alert read again (a resend has a new Kafka offset) is neither new nor a conflict."""
    alert_id = unique_id()
    first = await insert_alerts(conn, [row(alert(alert_id), offset=1)])
    again = await insert_alerts(conn, [row(alert(alert_id), offset=2)])
    assert first.new == {alert_id} and not first.conflicts
    assert again.new == set() and not again.conflicts
    assert len(await rows_of(conn, alert_id)) == 1


async def test_the_same_id_at_another_time_is_a_conflict_not_a_second_row(
    conn: psycopg.AsyncConnection,
) -> None:
    """An id reused with another event time is refused with the stored version attached."""
    alert_id = unique_id()
    await insert_alerts(conn, [row(alert(alert_id))])
    result = await insert_alerts(conn, [row(alert(alert_id, when=WHEN + timedelta(hours=1)))])
    assert result.new == set()
    [conflict] = result.conflicts
    assert conflict.row.alert.event_time == WHEN + timedelta(hours=1)
    assert datetime.fromisoformat(str(conflict.stored["event_time"])) == WHEN
    assert "already names another alert" in conflict.reason
    assert len(await rows_of(conn, alert_id)) == 1


async def test_the_same_id_with_other_content_is_a_conflict_not_a_silent_drop(
    conn: psycopg.AsyncConnection,
) -> None:
    """Same id and time, another depth: refused with both versions, the stored one kept."""
    alert_id = unique_id()
    await insert_alerts(conn, [row(alert(alert_id, depth_cm=20.0))])
    result = await insert_alerts(conn, [row(alert(alert_id, depth_cm=35.0))])
    [conflict] = result.conflicts
    assert conflict.stored["attributes"] == {"depth_cm": 20.0, "level": "lane"}
    assert conflict.row.alert.attributes["depth_cm"] == 35.0
    [(_, attributes)] = await rows_of(conn, alert_id)
    assert attributes["depth_cm"] == 20.0


async def test_a_conflict_inside_one_batch_keeps_the_first_and_refuses_the_other(
    conn: psycopg.AsyncConnection,
) -> None:
    """Two versions of one id in the same batch: the first is stored, the second refused,
    and the good neighbours of both are stored as usual."""
    alert_id, neighbour = unique_id(), unique_id()
    batch = [row(alert(alert_id)), row(alert(neighbour)), row(alert(alert_id, depth_cm=99.0)),
             row(alert(alert_id), offset=7)]  # fmt: skip
    result = await insert_alerts(conn, batch)
    assert result.new == {alert_id, neighbour}
    assert [c.row.alert.attributes["depth_cm"] for c in result.conflicts] == [99.0]
    assert len(await rows_of(conn, alert_id)) == 1


async def test_a_conflicting_alert_never_reaches_a_work_order(
    conn: psycopg.AsyncConnection, demo_config: CitywatchConfig
) -> None:
    """The processor folds only new alerts: a conflict is handed back to be dead-lettered,
    and the original's work order is untouched by it."""
    processor = AlertProcessor(demo_config)
    alert_id = unique_id()
    async with conn.transaction():
        first = await processor.handle(conn, [row(alert(alert_id))])
    async with conn.transaction():
        clash = await processor.handle(
            conn, [row(alert(alert_id, when=WHEN + timedelta(minutes=1)))]
        )
    assert first.new_alerts == 1 and alert_id in first.work_order_of
    assert clash.new_alerts == 0 and not clash.events
    assert [c.row.alert.id for c in clash.conflicts] == [alert_id]
    assert alert_id not in clash.work_order_of
