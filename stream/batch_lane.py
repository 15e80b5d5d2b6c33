"""Batch lanes: a topic's records handed by Faust's consumer to one handler in batches,
without a Faust event and stream step per record.

Why: the worker stores, folds and answers alerts a batch at a time (one transaction,
receipts and events after the commit), yet a Faust agent receives them one by one: the
conductor decodes each record into an ``Event``, queues it, and the stream steps through
it with its sensors, context variables and per-event acks before ``take_events`` hands a
batch on. On the 2-core benchmark machine a worker that drops its records reaches
12,000–23,000 records/s as a Faust agent and 42,000–54,000/s through a lane
(``benchmarks/stream.py``, reference rows). The app's own work per alert (validation, the
transaction, receipts) is larger still, so its rate moved less (within the runs' noise):
the lane's gain is the CPU it leaves to that work, and to the database beside it.

What Faust still does for a lane's topic: the consumer group and rebalancing, fetching,
offset tracking with gaps, and commits (an offset moves only past acknowledged records);
and flow control: a rebalance suspends intake and clears the lane's buffer as it clears
agents' buffers (cleared records were not acknowledged, so whoever owns the partition next
fetches them again). What a lane does: on intake, mark each record unacknowledged with the
consumer (a rebalance then waits for the batch in hand, ``Consumer.wait_empty``); hand the
handler up to ``max_records`` at a time (what arrived within ``within_s`` of the first);
acknowledge the batch once the handler returned. A handler that raises has its records
passed to ``on_error`` (the app dead-letters them) and then acknowledged: an exception
never stops the lane and never moves an offset past a record that was not stored or
dead-lettered.

A handler in two steps (:class:`TwoStep`: the app's intake validates, then stores and
answers) has the first step of the next batch run while the batch before is still being
handled: decoding and validating a batch overlaps the wait for the previous one's commit
and acks (issue 22). Second steps still run one at a time, in order, and each batch is
acknowledged when its own second step returned, so nothing about offsets changes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

import faust
from faust.types import Message
from mode.utils.queues import FlowControlQueue

from citywatch.stream.metrics import lane_batch

log = logging.getLogger(__name__)

Handler = Callable[[list[Message]], Awaitable[None]]
ErrorHandler = Callable[[Message, Exception], Awaitable[None]]


@runtime_checkable
class TwoStep(Protocol):
    """A handler whose first step needs no state the second step of an earlier batch
    changes (validation), so it may run while that batch is being handled."""

    async def prepare(self, records: list[Message]) -> Any:
        """The first step (its result goes to :meth:`handle_prepared`)."""

    async def handle_prepared(self, prepared: Any) -> None:
        """The second step, one batch at a time, in order."""


async def _as_they_are(records: list[Message]) -> list[Message]:
    return records


class BatchLane:
    """The records of one Faust topic, in batches, for one handler (see the module doc)."""

    def __init__(
        self,
        app: faust.App,
        topic: faust.TopicT,
        handler: Handler,
        on_error: ErrorHandler,
        *,
        max_records: int,
        within_s: float,
        buffer: int,
    ) -> None:
        self.app, self.topic, self.handler, self.on_error = app, topic, handler, on_error
        self.prepare: Callable[[list[Message]], Awaitable[Any]] = _as_they_are
        self.step: Callable[[Any], Awaitable[None]] = handler
        if isinstance(handler, TwoStep):
            self.prepare, self.step = handler.prepare, handler.handle_prepared
        self.max_records, self.within_s, self.buffer = max_records, within_s, buffer
        self._queue: FlowControlQueue[Message] | None = None

    @property
    def queue(self) -> FlowControlQueue[Message]:
        """The lane's buffer, cleared by Faust's flow control on a rebalance (made on first
        use: it needs the running app's flow control)."""
        if self._queue is None:
            self._queue = FlowControlQueue(
                self.buffer, flow_control=self.app.flow_control, clear_on_resume=True
            )
        return self._queue

    async def take(self) -> list[Message]:
        """The next batch: the first record to arrive, and what follows it within
        ``within_s`` (at most ``max_records``)."""
        queue = self.queue
        batch = [await queue.get()]
        deadline = asyncio.get_running_loop().time() + self.within_s
        while len(batch) < self.max_records:
            while queue.qsize() and len(batch) < self.max_records:
                batch.append(queue.get_nowait())
            remaining = deadline - asyncio.get_running_loop().time()
            if len(batch) >= self.max_records or remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def run(self) -> None:
        """Handle batches until the worker stops: take and prepare the next batch while the
        one before is handled (see the module doc)."""
        in_flight: asyncio.Task[None] | None = None
        try:
            while True:
                batch = await self.take()
                prepared: Any
                try:
                    prepared = await self.prepare(batch)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the boundary: dead-letter the batch in turn
                    prepared = _Failed(exc)
                if in_flight is not None:
                    await in_flight
                in_flight = asyncio.create_task(self._handle(batch, prepared))
        finally:
            if in_flight is not None:
                in_flight.cancel()

    async def _handle(self, batch: list[Message], prepared: Any) -> None:
        """The second step of one batch, then its acknowledgements."""
        consumer = self.app.consumer
        message_out = self.app.sensors.on_message_out
        started = time.perf_counter()
        try:
            if isinstance(prepared, _Failed):
                raise prepared.error
            await self.step(prepared)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the boundary: a bug must not stop the lane
            log.exception("handling %d records of %s failed", len(batch), self.topic)
            batch = [message for message in batch if await self._failed(message, exc)]
        for message in batch:
            consumer.ack(message)
            message_out(message.tp, message.offset, message)
        if batch:
            lane_batch(batch, time.perf_counter() - started)

    async def _failed(self, message: Message, exc: Exception) -> bool:
        """Dead-letter a record its handler failed on; False when that failed too: the
        record is then left unacknowledged, so its partition's committed offset stays before
        it and it is handled again after the next restart or rebalance."""
        try:
            await self.on_error(message, exc)
        except Exception:
            log.exception(
                "could not dead-letter %s[%s]@%s; it will be redelivered",
                message.topic, message.partition, message.offset,
            )  # fmt: skip
            return False
        return True


class _Failed:
    """A batch whose first step raised: its records are dead-lettered in its turn."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def attach(app: faust.App, lane: BatchLane) -> None:
    """Subscribe the worker to the lane's topic and run the lane while the worker runs."""
    lanes: dict[str, BatchLane] = app.batch_lanes  # type: ignore[attr-defined]
    for name in lane.topic.topics:
        lanes[name] = lane
    app.topics.add(lane.topic)

    async def run_lane() -> None:
        await lane.run()

    run_lane.__name__ = f"lane_{'_'.join(lane.topic.topics).replace('.', '_')}"
    app.task(run_lane)
