"""Faust's Kafka transport, tuned for a worker that must keep up with a city's alerts.

Five changes, all inside the transport:

**Fetch wait.** Faust creates its worker consumer with ``fetch_max_wait_ms=1500`` and no
setting to change it. Tansu answers a fetch that finds nothing new only when that wait runs
out (records arriving meanwhile do not end it early; measured: p50 Kafka → database 540 ms
at 1500 ms, 150 ms at 100 ms), so a worker that has caught up sees the next alert up to
1.5 s late: the p99 MQTT → work order latency was over a second at 500 alerts/s for that
alone. A short wait costs an empty fetch round trip every :data:`FETCH_MAX_WAIT_MS` idle.

**Delivery without a task per message.** Faust's fetch loop hands each record to the
agents' buffers through ``Service.wait_first(callback(message), suspend_flow.wait())``:
four asyncio tasks and an ``asyncio.wait`` per record, so that a delivery blocked on a full
buffer can be abandoned when a rebalance stops the flow. A Faust agent that does nothing
topped out near 10,000 records/s on the benchmark machine for that alone (a bare aiokafka
``getmany`` loop: 290,000/s). Almost every delivery completes without waiting (the buffer
has room), so :class:`_Consumer` runs the delivery coroutine's first step in place and
only when it actually has to wait does it finish it the Faust way, abortable by a
stopped flow (:func:`_finish`). Offsets, gaps and commits are tracked as Faust does.

**Batch lanes.** Records of a topic that has a :class:`~citywatch.stream.batch_lane.BatchLane`
skip the conductor and go straight into the lane's buffer, tracked as unacknowledged like
any record an agent takes (see that module for why and for what Faust still does).

**An idempotent producer** when ``services.kafka.idempotent_producer`` is on (Faust
enables it only in its exactly-once mode): receipts, events and dead letters are not
duplicated by the producer's own retries.

**A log that started again.** A record fetched below the committed offset means the
broker lost its log (:func:`log_went_back`); Faust would skip such records silently, so
the app's ``on_lost_log`` is told (the worker then starts again, see
:class:`citywatch.stream.timers.BrokerWatch`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TransportT
from mode import ServiceT

from citywatch.stream.batch_lane import BatchLane
from citywatch.stream.settings import FETCH_MAX_WAIT_MS

YIELD_EVERY = 100
"""Records delivered between two turns given to the event loop (as Faust does)."""


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when the consumer starts
        return consumer


async def _finish(coro: Coroutine[Any, Any, Any], waiting: Any) -> Any:
    """Drive ``coro`` on from where its first step stopped, waiting on ``waiting``.

    What an asyncio task does for a coroutine: wait for the future it yielded (``None``: a
    bare yield, one loop turn), then resume it with the outcome; a cancellation of this
    task cancels that future and is thrown into ``coro`` so it cleans up as usual.
    """
    while True:
        outcome: BaseException | None = None
        try:
            if waiting is None:
                await asyncio.sleep(0)
            else:
                # The task's half of the protocol: a future a coroutine yields comes marked
                # "blocking", and whoever takes it clears the mark (asyncio refuses to await
                # a future still marked).
                waiting._asyncio_future_blocking = False
                await waiting
        except BaseException as exc:  # the future's error or this task's cancellation: coro's
            outcome = exc
        try:
            waiting = coro.send(None) if outcome is None else coro.throw(outcome)
        except StopIteration as done:
            return done.value


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _deliver(self, message: Any) -> None:
        """Hand ``message`` to the agents' buffers; a task only when that has to wait."""
        delivery: Any = self.callback(message)
        if isinstance(delivery, Coroutine) and not self.suspend_flow.is_set():
            try:
                waiting = delivery.send(None)
            except StopIteration:
                return  # delivered in place: the usual case
            delivery = _finish(delivery, waiting)
        await self.wait_first(delivery, self.suspend_flow.wait())

    async def _to_lane(self, lane: BatchLane, message: Any) -> None:
        """Put ``message`` in its lane's buffer, tracked as unacknowledged; skipped (not
        tracked: fetched again later) while a rebalance holds the flow or when it was
        fetched for an older assignment, as Faust's conductor does for agents."""
        app = self.app
        if not app.flow_control.is_active() or message.generation_id != app.consumer_generation_id:
            return
        message.tracked = True
        self.track_message(message)
        queue = lane.queue
        if queue.full():
            await self.wait_first(queue.put(message), self.suspend_flow.wait())
        else:
            queue.put_nowait(message)

    async def _drain_messages(self, fetcher: ServiceT) -> None:  # pragma: no cover
        """Faust's fetch loop (consumer.py, ``Consumer._drain_messages``) with
        :meth:`_deliver` in place of a ``wait_first`` per record, and records of a batch
        lane's topic put in its buffer (:meth:`_to_lane`) instead of the conductor's."""
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set  # type: ignore[attr-defined]
        read_offset = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        lanes: dict[str, BatchLane] = getattr(self.app, "batch_lanes", {})
        since_yield = 0
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                self.diag.set_flag(CONSUMER_FETCHING)
                records = self.getmany(timeout=1.0)
                await self.sleep(0)
                if self.should_stop:
                    continue
                async for tp, message in records:
                    since_yield += 1
                    if since_yield > YIELD_EVERY:
                        await asyncio.sleep(0)
                        since_yield = 0
                    offset, last = message.offset, read_offset[tp]
                    if last is not None and offset < last:
                        self._check_log_went_back(tp, offset)
                        continue  # fetched again after a seek: already delivered
                    if last and offset - last > 1 and acks_enabled_for(message.topic):
                        await self._add_gap(tp, last + 1, offset)
                    if self._commit_every is not None and self._n_acked >= self._commit_every:
                        self._n_acked = 0
                        await self.commit()
                    lane = lanes.get(message.topic)
                    if lane is None:
                        await self._deliver(message)
                    else:
                        await self._to_lane(lane, message)
                    read_offset[tp] = offset
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    def _check_log_went_back(self, tp: Any, offset: int) -> None:
        """A record below the committed offset: the broker's log restarted (see
        :func:`log_went_back`); the app's ``on_lost_log`` is told once."""
        reason = log_went_back(tp, offset, self._committed_offset.get(tp))
        app: Any = self.app
        if reason is not None and not getattr(app, "lost_log_reported", True):
            app.lost_log_reported = True
            app.on_lost_log(reason)


def log_went_back(tp: Any, offset: int, committed: int | None) -> str | None:
    """Why a record at ``offset`` of ``tp`` means the broker lost its log, or None.

    Faust seeks a partition to its committed offset (the next to read), so every record
    it fetches again lies at or after it. One before it was never delivered by a broker
    that kept its log: the log started again (a broker that lost its storage, a topic
    deleted and recreated), and Faust, which skips records below the last it delivered,
    would drop the new log's records silently until it grew past that offset.
    """
    if committed is None or offset >= committed:
        return None
    return (
        f"{tp.topic}[{tp.partition}] delivered offset {offset}, before the committed"
        f" {committed}: the Kafka log started again"
    )


class _Producer(faust_aiokafka.Producer):
    """Faust's producer, idempotent when the app says so (Faust turns idempotence on only in
    its exactly-once mode, which citywatch does not use)."""

    def _settings_extra(self) -> Mapping[str, Any]:
        extra = dict(super()._settings_extra())
        if getattr(self.app, "idempotent_producer", False):
            extra["enable_idempotence"] = True
        return extra


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer
    Producer = _Producer


def kafka_producer(app: faust.App) -> AIOKafkaProducer:
    """The started aiokafka producer under ``app``'s Faust producer (for batch sends)."""
    producer: AIOKafkaProducer = app.producer._ensure_producer()  # type: ignore[attr-defined]
    return producer


def worker_options(
    *,
    partitions: int,
    session_timeout_s: float,
    data_dir: Path,
    replication_factor: int = 1,
    producer_acks: int = -1,
) -> dict[str, Any]:
    """The Faust settings of a citywatch stream worker (the app and its benchmark's reference
    agent share them); partitions, replication and acks (-1: all) from ``services.kafka``."""
    return dict(
        processing_guarantee="at_least_once",
        producer_acks=producer_acks,
        topic_partitions=partitions,
        topic_replication_factor=replication_factor,
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        store="memory://",
        datadir=str(data_dir),
        # A worker that died is noticed within seconds, so its partitions move to the others
        # quickly (Faust's 60 s defaults leave a restarted worker idle for a minute).
        broker_session_timeout=session_timeout_s,
        broker_rebalance_timeout=session_timeout_s,
        broker_heartbeat_interval=max(1.0, session_timeout_s / 5),
        # Batches of thousands per transaction: fetch and buffer enough to fill them.
        broker_max_poll_records=5000,
        stream_buffer_maxsize=20000,
        # Receipts and events of a batch are handed over together: let them share record
        # batches (Faust's 16 KiB default splits one batch into hundreds of requests).
        producer_max_batch_size=1048576,
        producer_max_request_size=4194304,
    )


class StreamApp(faust.App):
    """A Faust app with this module's transport (see the module docstring) and batch lanes
    (:mod:`citywatch.stream.batch_lane`), by topic name."""

    def __init__(
        self,
        *args: Any,
        on_lost_log: Callable[[str], None] | None = None,
        idempotent_producer: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.idempotent_producer = idempotent_producer  # read by the transport's producer
        self.batch_lanes: dict[str, BatchLane] = {}
        self.on_lost_log = on_lost_log
        self.lost_log_reported = on_lost_log is None  # nobody to tell: never report

    def _new_transport(self) -> TransportT:
        return _Transport(self.conf.broker_consumer, self)
