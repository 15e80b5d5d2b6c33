"""The Faust app: validate bridged messages, store them, fold alerts into work orders, run
SLA timers, send receipts and work-order events.

Runs with ``processing_guarantee="at_least_once"`` (Faust's exactly-once mode has known
duplicate and offset bugs); correctness comes from idempotent sinks. Records are handled in
batches (:mod:`citywatch.stream.batch_lane`: Faust's consumer hands each topic's records
to its handler in batches, without an event per record): one transaction per batch,
receipts and events sent only after it committed, offsets acknowledged after that. No
exception escapes a handler (an offset must never move past a record that was neither
stored nor dead-lettered): a record that cannot be processed goes to the
dead-letter topic with the reason and its original bytes; a database outage is retried
with backoff after rebuilding the in-memory state from the database.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import faust
import psycopg
from faust.types import Message
from psycopg import AsyncConnection
from pydantic import ValidationError

from citywatch.config import CitywatchConfig
from citywatch.contracts import (
    Alert,
    ContractError,
    DeviceRef,
    KafkaTopics,
    Receipt,
    ReceiptStatus,
    Status,
    Telemetry,
    TopicAddress,
    WorkOrderEvent,
    encode,
)
from citywatch.contracts.messages import Evidence, WireModel
from citywatch.storage.workorders import StaleWorkOrders
from citywatch.stream.batch_lane import BatchLane, attach
from citywatch.stream.center_relay import relay_once
from citywatch.stream.deadletter import DeadLetter, header_map
from citywatch.stream.faust_transport import StreamApp, kafka_producer, worker_options
from citywatch.stream.kafka_batches import Record, send_all
from citywatch.stream.processor import AlertProcessor, Outcome
from citywatch.stream.settings import StreamSettings
from citywatch.stream.sink import (
    AlertRow,
    KafkaPosition,
    insert_evidence,
    insert_telemetry,
    open_pool,
    upsert_status,
)
from citywatch.stream.validate import MQTT_TOPIC_HEADER, Registry, validate_record

log = logging.getLogger(__name__)
RETRY_MAX_S = 30.0
BATCH_MAX = 5000
BATCH_WITHIN_S = 0.1
BATCH_BUFFER = 20000
TICK_S = 2.0
RELAY_S = 1.0
T = TypeVar("T")
M = TypeVar("M", bound=WireModel)


def build_app(config: CitywatchConfig, settings: StreamSettings) -> faust.App:
    """A Faust app wired to the topics, the registry and the store of one site."""
    topics = KafkaTopics(settings.topic_prefix)
    registry = Registry.from_config(config)
    pool = open_pool(settings.database_url)
    processor = AlertProcessor(config)
    counters: Counter[str] = Counter()
    app = StreamApp(
        f"{settings.topic_prefix}-stream",
        broker=[f"kafka://{server}" for server in settings.kafka_servers],
        **worker_options(
            partitions=settings.partitions,
            session_timeout_s=settings.session_timeout_s,
            data_dir=settings.data_dir / "faust",
        ),
    )

    def raw_topic(name: str) -> faust.TopicT:
        return app.topic(
            name, value_type=bytes, key_type=bytes, value_serializer="raw", key_serializer="raw"
        )

    alerts_in, telemetry_in, status_in, evidence_in = (
        raw_topic(n) for n in (topics.alerts, topics.telemetry, topics.status, topics.evidence)
    )
    dead_letters = raw_topic(topics.dead_letters)
    state_lock = asyncio.Lock()  # the processor's state is shared by the alert agent and the timer
    ready_lock = asyncio.Lock()
    ready = asyncio.Event()
    pool_open = asyncio.Event()
    held: set[faust.types.TP] = set()  # the partitions of the last assignment

    async def ensure_ready() -> None:
        """Open the pool and rebuild the processor's state from the database, once."""
        if ready.is_set():
            return
        async with ready_lock:
            if ready.is_set():
                return
            if not pool_open.is_set():
                await pool.open(wait=True, timeout=30)
                pool_open.set()
            async with state_lock, pool.connection() as conn:
                restored = await processor.restore(conn, datetime.now(UTC))
            log.info("restored %d work orders and their dedup state from the database", restored)
            ready.set()

    async def with_db_retry(what: str, action: Callable[[], Awaitable[T]]) -> T:
        delay = 0.5
        while True:
            try:
                await ensure_ready()
                return await action()
            except StaleWorkOrders as exc:
                # A person acted on these orders (command center) since this worker read
                # them: start over from what the database holds, at once.
                log.info("%s; reloading work orders from the database and retrying", exc)
                ready.clear()
            except (psycopg.OperationalError, psycopg.errors.AdminShutdown) as exc:
                log.error(
                    "database unavailable while storing %s (%s); retrying in %.1fs",
                    what,
                    exc,
                    delay,
                )
                ready.clear()  # rebuild in-memory state from what actually committed
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    async def produce(records: Sequence[Record]) -> None:
        """Send (topic, key, value) records and wait for the broker's acks.

        They go out as one record batch per partition; waiting for the acks keeps offsets
        (acknowledged after the handler returns) behind the receipts and events they caused.
        """
        await send_all(kafka_producer(app), records)

    def receipt(
        device: DeviceRef,
        message_id: str,
        status: ReceiptStatus,
        received_at: datetime,
        *,
        work_order: str | None = None,
        reason: str | None = None,
        validated: bool = True,
    ) -> Record:
        """The receipts record of one message; ``validated``: its fields come from a message
        that passed validation (then the receipt is built without validating them again).
        """
        make = Receipt.model_construct if validated else Receipt
        message = make(
            id=f"r.{message_id}", message_id=message_id, device=device, status=status,
            received_at=received_at, work_order_id=work_order, reason=reason,
        )  # fmt: skip
        return topics.receipts, device.id.encode(), encode(message)

    def event_records(events: Sequence[WorkOrderEvent]) -> list[Record]:
        return [(topics.workorder_events, e.work_order_id.encode(), encode(e)) for e in events]

    async def dead_letter(message: Message, error: Exception) -> None:
        headers = header_map(message.headers)
        record = DeadLetter(
            source_topic=message.topic, partition=message.partition, offset=message.offset,
            error_class=type(error).__name__, message=str(error), key=message.key,
            value=message.value if isinstance(message.value, bytes) else bytes(message.value or b""),
            original_headers=tuple(headers.items()),
        )  # fmt: skip
        counters[f"dead_letter.{record.error_class}"] += 1
        log.warning(
            "dead-lettered %s[%s]@%s: %s: %s", record.source_topic, record.partition,
            record.offset, record.error_class, record.message,
        )  # fmt: skip
        await dead_letters.send(key=record.key, value=record.value, headers=record.headers())
        device, message_id = _rejectable(record.value, headers)
        if device is None or message_id is None:
            return
        reason = f"{record.error_class}: {record.message}"
        try:
            rejected = receipt(
                device, message_id, ReceiptStatus.REJECTED, datetime.now(UTC), reason=reason,
                validated=False,
            )  # fmt: skip
        except ValidationError:  # the id it carries is not a valid id: nothing to answer
            log.warning("no rejected receipt for message id %r: not a valid id", message_id)
            return
        await produce([rejected])

    async def valid(records: Sequence[Message]) -> list[tuple[Message, WireModel]]:
        """The records of a batch that pass validation; the others are dead-lettered."""
        good = []
        for record in records:
            try:
                _, message = validate_record(record.value, record.headers, registry)
                good.append((record, message))
            except ContractError as exc:
                await dead_letter(record, exc)
            except Exception as exc:  # the boundary: one bad record must not stop the stream
                log.exception("unexpected error validating %s@%s", record.topic, record.offset)
                await dead_letter(record, exc)
        return good

    async def handle_alerts(batch: list[tuple[Message, WireModel]]) -> None:
        rows = [
            AlertRow(m, KafkaPosition(r.topic, r.partition, r.offset), processor.district_of(m))
            for r, m in batch
            if isinstance(m, Alert)
        ]

        async def transact() -> Outcome:
            async with state_lock, pool.connection() as conn, conn.transaction():
                return await processor.handle(conn, rows)

        try:
            outcome = await with_db_retry(f"{len(rows)} alerts", transact)
        except Exception as exc:  # a bug on one batch: dead-letter it, keep the stream going
            log.exception("unexpected error storing a batch of %d alerts", len(rows))
            for record, _ in batch:
                await dead_letter(record, exc)
            ready.clear()
            return
        received_at = datetime.now(UTC)
        stored = ReceiptStatus.STORED
        receipts = [
            receipt(a.device, a.id, stored, received_at, work_order=outcome.work_order_of.get(a.id))
            for a in (row.alert for row in rows)
        ]
        await produce(receipts + event_records(outcome.events))
        counters["workorder_events"] += len(outcome.events)
        counters["alerts.stored"] += outcome.new_alerts
        counters["alerts.redelivered"] += len(rows) - outcome.new_alerts

    def storing(
        kind: type[M],
        insert: Callable[[AsyncConnection, list[M]], Awaitable[int]],
        name: str,
    ) -> Callable[[list[tuple[Message, WireModel]]], Awaitable[None]]:
        """A batch handler that stores the messages of ``kind`` in one transaction."""

        async def handle(batch: list[tuple[Message, WireModel]]) -> None:
            items = [m for _, m in batch if isinstance(m, kind)]

            async def transact() -> int:
                async with pool.connection() as conn, conn.transaction():
                    return await insert(conn, items)

            counters[f"{name}.stored"] += await with_db_retry(f"{len(items)} {name}", transact)

        return handle

    async def upsert_statuses(conn: AsyncConnection, statuses: list[Status]) -> int:
        for status in statuses:
            await upsert_status(conn, status)
        return len(statuses)

    handle_telemetry = storing(Telemetry, insert_telemetry, "telemetry")
    handle_status = storing(Status, upsert_statuses, "status")
    handle_evidence = storing(Evidence, insert_evidence, "evidence")

    def lane(
        topic: faust.TopicT,
        handler: Callable[[list[tuple[Message, WireModel]]], Awaitable[None]],
    ) -> None:
        async def handle(records: list[Message]) -> None:
            batch = await valid(records)
            if batch:
                await handler(batch)

        attach(app, BatchLane(app, topic, handle, dead_letter, max_records=BATCH_MAX,
                              within_s=BATCH_WITHIN_S, buffer=BATCH_BUFFER))  # fmt: skip

    lane(alerts_in, handle_alerts)
    lane(telemetry_in, handle_telemetry)
    lane(status_in, handle_status)
    lane(evidence_in, handle_evidence)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def reload_after_rebalance(
        app: faust.App, assigned: set[faust.types.TP], **_: Any
    ) -> None:
        """Partitions that come here from another worker come with the work orders it opened
        for them, which this worker's memory does not hold (it would open a second order for
        the same spot): read the state again from the database before the next batch. The
        previous owner has committed everything it acknowledged: Faust waits for each
        worker's records in hand to be acknowledged before partitions are assigned again.
        A rebalance that leaves this worker what it had (another one joined or left
        elsewhere) reads nothing."""
        arrived = assigned - held
        held.clear()
        held.update(assigned)
        if arrived:
            ready.clear()

    @app.timer(interval=TICK_S)
    async def sla_and_quiet_timer() -> None:
        """Close quiet incidents and escalate overdue work orders."""

        async def transact() -> Outcome:
            async with state_lock, pool.connection() as conn, conn.transaction():
                return await processor.tick(conn, datetime.now(UTC))

        try:
            events = (await with_db_retry("the SLA tick", transact)).events
            await produce(event_records(events))
            counters["workorder_events"] += len(events)
        except Exception:  # never let the timer die
            log.exception("SLA tick failed; will retry")

    async def send_events(events: list[WorkOrderEvent]) -> None:
        await produce(event_records(events))  # the broker's acks, before the position moves on

    @app.timer(interval=RELAY_S)
    async def relay_peoples_events() -> None:
        """Send the command center's (people's) work-order events to Kafka as well."""
        if not ready.is_set():
            return

        async def transact() -> int:
            async with pool.connection() as conn, conn.transaction():
                return await relay_once(conn, send_events)

        try:
            counters["workorder_events.relayed"] += await with_db_retry("the relay", transact)
        except Exception:  # never let the timer die
            log.exception("relaying people's work-order events failed; will retry")

    @app.timer(interval=30.0)
    async def report_counters() -> None:
        if counters:
            log.info("stream counters: %s", dict(counters))

    return app


def _rejectable(value: bytes, headers: dict[str, bytes]) -> tuple[DeviceRef | None, str | None]:
    """The device and message id to send a ``rejected`` receipt to, when both can be read."""
    try:
        address = TopicAddress.parse(headers[MQTT_TOPIC_HEADER].decode())
        raw: Any = json.loads(value)
        message_id = raw.get("id") if isinstance(raw, dict) else None
        device = DeviceRef(site=address.site, kind=address.device_kind, id=address.device_id)
    except (KeyError, ValueError, ContractError, UnicodeDecodeError):
        return None, None
    if not isinstance(message_id, str) or raw.get("type") != "alert":
        return None, None
    return device, message_id
