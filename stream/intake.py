"""The first step of every uplink lane: each record of a batch validated, the ones that
fail rejected, the rest handed to the lane's handler as typed messages.

Why one step for all four uplink topics (alerts, telemetry, status, evidence): whatever
a record carries, a bad one must not stop its batch, and it must not be acknowledged
before it was dead-lettered. Validation (:func:`~citywatch.stream.validate.validate_record`)
is pure; what fails it, a :class:`~citywatch.contracts.ContractError` or a bug, goes to
``reject`` (:class:`~citywatch.stream.rejections.Rejections` in the worker) with its reason.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from faust.types import Message

from citywatch.contracts import ContractError
from citywatch.contracts.messages import WireModel
from citywatch.stream.rejections import Reject
from citywatch.stream.validate import Registry, validate_record

log = logging.getLogger(__name__)

Validated = tuple[Message, WireModel]
"""A record of a batch and the message it carries, validated."""

BatchHandler = Callable[[Sequence[Validated]], Awaitable[None]]
"""What a lane does with the valid records of a batch (never called with none)."""


def received_at(record: Message) -> datetime | None:
    """When the bridge produced the record (its Kafka timestamp): the bound event times are
    judged against, the same in a replay as live; None when the record has none."""
    return datetime.fromtimestamp(record.timestamp, UTC) if record.timestamp else None


class Intake:
    """A batch lane's handler: validate, reject what fails, hand the rest to ``handler``."""

    def __init__(self, registry: Registry, reject: Reject, handler: BatchHandler) -> None:
        self.registry, self.reject, self.handler = registry, reject, handler

    async def __call__(self, records: list[Message]) -> None:
        await self.handle_prepared(await self.prepare(records))

    async def prepare(self, records: list[Message]) -> list[Validated]:
        """The first step (a lane runs it while the batch before is handled: it reads no
        state the handler changes): the valid records, the others rejected."""
        return await self.valid(records)

    async def handle_prepared(self, batch: list[Validated]) -> None:
        """The second step: the valid records to the handler."""
        if batch:
            await self.handler(batch)

    async def valid(self, records: Sequence[Message]) -> list[Validated]:
        """The records of a batch that pass validation, in order; the others are rejected."""
        good = []
        for record in records:
            try:
                _, message = validate_record(
                    record.value, record.headers, self.registry, received_at(record)
                )
                good.append((record, message))
            except ContractError as exc:
                await self.reject(record, exc)
            except Exception as exc:  # the boundary: one bad record must not stop the stream
                log.exception("unexpected error validating %s@%s", record.topic, record.offset)
                await self.reject(record, exc)
        return good
