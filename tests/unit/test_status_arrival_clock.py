"""Statuses are timed when the bridge received them: a gateway's last will, written with the
time it connected, then counts as newer than the "online" it sent after connecting."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from faust.types import Message

from citywatch.contracts import DeviceRef, Status
from citywatch.contracts.messages import DeviceState
from citywatch.stream.device_data import DeviceDataHandler, on_arrival_clock

GATEWAY = DeviceRef(site="demo", kind="gateway", id="gw-cam-hebin")
CONNECTED = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def received(status: Status, at: datetime | None) -> Message:
    """A status record as the bridge writes it, with its Kafka timestamp (None: none)."""
    stamp = at.timestamp() if at else None
    return Message("citywatch.status", 0, 0, stamp, 0, [], b"k", b"", None)


async def test_the_will_is_newer_than_the_online_sent_after_it() -> None:
    """The will (written at connect) reaches the bridge an hour after the online sent just
    after connecting: on the bridge's clock the will is the newest, so it is not ignored."""
    will = Status(device=GATEWAY, state=DeviceState.OFFLINE, event_time=CONNECTED,
                  detail="connection lost")  # fmt: skip
    online = Status(device=GATEWAY, state=DeviceState.ONLINE,
                    event_time=CONNECTED + timedelta(seconds=1))  # fmt: skip
    died = CONNECTED + timedelta(hours=1)
    stored: list[Status] = []

    async def store(items: list[Status]) -> int:
        stored.extend(items)
        return len(items)

    handler = DeviceDataHandler(Status, "status", store, Counter())
    await handler([(received(online, CONNECTED + timedelta(seconds=1)), online),
                   (received(will, died), will)])  # fmt: skip
    assert [(s.state, s.event_time) for s in stored] == [
        (DeviceState.ONLINE, CONNECTED + timedelta(seconds=1)),
        (DeviceState.OFFLINE, died),
    ]


def test_a_record_without_a_timestamp_keeps_the_gateways_time() -> None:
    """No Kafka timestamp: the status is stored as the gateway timed it."""
    status = Status(device=GATEWAY, state=DeviceState.ONLINE, event_time=CONNECTED)
    assert on_arrival_clock(received(status, None), status) is status
