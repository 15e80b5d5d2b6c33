"""What the stream worker publishes: receipts to devices and work-order events to integrators.

Both are Kafka records built here from the worker's results and handed to one ``send``
that returns only once the broker acknowledged them (in the worker:
:func:`~citywatch.stream.kafka_batches.send_all` on Faust's producer). Waiting for the acks
is what keeps a lane's offsets, acknowledged after its handler returns, behind the
receipts and events its records caused. Building a record is pure, so the parts that
answer (the alert handler, the rejections, the timers) are tested with a ``send`` that
keeps what it was given.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from pydantic_core import to_json

from citywatch.contracts import (
    DeviceRef,
    KafkaTopics,
    Receipt,
    ReceiptStatus,
    WorkOrderEvent,
    encode,
)
from citywatch.contracts.version import SCHEMA_VERSION
from citywatch.stream.kafka_batches import Record

Send = Callable[[Sequence[Record]], Awaitable[None]]
"""Sends (topic, key, value) records and returns once the broker acknowledged them all."""


class Outbound:
    """Receipts and work-order events as records of the site's topics, and their ``send``."""

    def __init__(self, topics: KafkaTopics, send: Send) -> None:
        self.topics = topics
        self.send = send

    def receipt(
        self,
        device: DeviceRef,
        message_id: str,
        status: ReceiptStatus,
        received_at: datetime,
        *,
        work_order: str | None = None,
        reason: str | None = None,
        validated: bool = True,
    ) -> Record:
        """The receipts record of one message, keyed by its device (a device's receipts
        keep one partition, so one order). ``validated``: the fields come from a message
        that passed validation, so the receipt's JSON is written from them as they are (a
        receipt per alert at thousands of alerts a second; the same bytes as
        :func:`~citywatch.contracts.encode` of the :class:`Receipt`, without building and
        validating the model); otherwise a field that is not valid raises
        :class:`pydantic.ValidationError`.
        """
        key = device.id.encode()
        if not validated:
            message = Receipt(
                id=f"r.{message_id}", message_id=message_id, device=device, status=status,
                received_at=received_at, work_order_id=work_order, reason=reason,
            )  # fmt: skip
            return self.topics.receipts, key, encode(message)
        # Receipt's fields in its order; None fields left out, as encode does.
        fields: dict[str, object] = {
            "v": SCHEMA_VERSION, "type": "receipt", "id": f"r.{message_id}",
            "message_id": message_id, "device": device, "status": status,
            "received_at": received_at,
        }  # fmt: skip
        if work_order is not None:
            fields["work_order_id"] = work_order
        if reason is not None:
            fields["reason"] = reason
        return self.topics.receipts, key, to_json(fields)

    def events(self, events: Sequence[WorkOrderEvent]) -> list[Record]:
        """The work-order events records, keyed by work order (one order's events keep
        their order)."""
        return [(self.topics.workorder_events, e.work_order_id.encode(), encode(e)) for e in events]

    async def send_events(self, events: Sequence[WorkOrderEvent]) -> None:
        """Send work-order events and wait for the broker's acks."""
        await self.send(self.events(events))
