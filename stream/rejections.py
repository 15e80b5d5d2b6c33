"""What becomes of a record the stream worker cannot process: a dead letter, and a rejected
receipt to the device that sent it.

Nothing is dropped silently: the record goes to the dead-letter topic with its original
bytes and headers and the reason (:class:`~citywatch.stream.deadletter.DeadLetter`, Kafka
Connect's headers), and a lane acknowledges it only after that send returned. When the
record is an alert whose device and id can still be read, the device is sent a ``rejected``
receipt with the reason, so its outbox stops resending it and moves it to quarantine.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from faust.types import Message
from pydantic import ValidationError

from citywatch.contracts import ContractError, DeviceRef, ReceiptStatus, TopicAddress
from citywatch.stream.clock import Clock, utc_now
from citywatch.stream.deadletter import DeadLetter, header_map
from citywatch.stream.outbound import Outbound
from citywatch.stream.validate import MQTT_TOPIC_HEADER

log = logging.getLogger(__name__)

Reject = Callable[[Message, Exception], Awaitable[None]]
"""Dead-letters one record with the error that stopped it (what a lane calls on failure)."""


def dead_letter_of(message: Message, error: Exception) -> DeadLetter:
    """The dead letter of ``message``: its bytes, headers and position, and ``error``."""
    value = message.value if isinstance(message.value, bytes) else bytes(message.value or b"")
    return DeadLetter(
        source_topic=message.topic, partition=message.partition, offset=message.offset,
        error_class=type(error).__name__, message=str(error), key=message.key, value=value,
        original_headers=tuple(header_map(message.headers).items()),
    )  # fmt: skip


def rejectable(value: bytes, headers: Mapping[str, bytes]) -> tuple[DeviceRef, str] | None:
    """The device and message id to send a ``rejected`` receipt to: only for an alert (the
    one message a gateway keeps until its receipt), and only when both can be read."""
    try:
        address = TopicAddress.parse(headers[MQTT_TOPIC_HEADER].decode())
        raw: Any = json.loads(value)
        message_id = raw.get("id") if isinstance(raw, dict) else None
        device = DeviceRef(site=address.site, kind=address.device_kind, id=address.device_id)
    except (KeyError, ValueError, ContractError, UnicodeDecodeError):
        return None
    if not isinstance(message_id, str) or raw.get("type") != "alert":
        return None
    return device, message_id


class Rejections:
    """Dead-letters records and answers their devices (see the module doc).

    ``send_dead_letter`` sends one dead letter to the dead-letter topic; rejected receipts go
    out through ``outbound``; ``counters`` counts dead letters by error class.
    """

    def __init__(
        self,
        send_dead_letter: Callable[[DeadLetter], Awaitable[object]],
        outbound: Outbound,
        counters: Counter[str],
        clock: Clock = utc_now,
    ) -> None:
        self.send_dead_letter, self.outbound = send_dead_letter, outbound
        self.counters, self.clock = counters, clock

    async def __call__(self, message: Message, error: Exception) -> None:
        """Dead-letter ``message`` for ``error``, then send its device a rejected receipt.
        Raises when the dead letter could not be sent (the lane then leaves the record
        unacknowledged, to be handled again)."""
        record = dead_letter_of(message, error)
        self.counters[f"dead_letter.{record.error_class}"] += 1
        log.warning(
            "dead-lettered %s[%s]@%s: %s: %s", record.source_topic, record.partition,
            record.offset, record.error_class, record.message,
        )  # fmt: skip
        await self.send_dead_letter(record)
        answer = rejectable(record.value, dict(record.original_headers))
        if answer is None:
            return
        device, message_id = answer
        reason = f"{record.error_class}: {record.message}"
        try:
            rejected = self.outbound.receipt(
                device, message_id, ReceiptStatus.REJECTED, self.clock(), reason=reason,
                validated=False,
            )  # fmt: skip
        except ValidationError:  # the id it carries is not a valid id: nothing to answer
            log.warning("no rejected receipt for message id %r: not a valid id", message_id)
            return
        await self.outbound.send([rejected])
