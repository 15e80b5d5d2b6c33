"""The Faust app: validate bridged messages, store them idempotently, send receipts.

Runs with ``processing_guarantee="at_least_once"`` (Faust's exactly-once mode has known
duplicate and offset bugs); correctness comes from idempotent sinks. No exception escapes an
agent: an escaped exception makes Faust skip offsets. A message that cannot be processed
goes to the dead-letter topic with the reason and its original bytes; a database outage is
retried with backoff instead, so valid alerts are never dead-lettered for an outage.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import faust
import psycopg

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
    encode,
)
from citywatch.stream.deadletter import DeadLetter, header_map
from citywatch.stream.settings import StreamSettings
from citywatch.stream.sink import KafkaPosition, Store
from citywatch.stream.validate import MQTT_TOPIC_HEADER, Registry, validate_record

log = logging.getLogger(__name__)
RETRY_MAX_S = 30.0


def build_app(config: CitywatchConfig, settings: StreamSettings) -> faust.App:
    """A Faust app wired to the topics, the registry and the store of one site."""
    topics = KafkaTopics(settings.topic_prefix)
    registry = Registry.from_config(config)
    store = Store(settings.database_url)
    counters: Counter[str] = Counter()
    app = faust.App(
        f"{settings.topic_prefix}-stream",
        broker=[f"kafka://{server}" for server in settings.kafka_servers],
        processing_guarantee="at_least_once",
        producer_acks=-1,
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        store="memory://",
        # A worker that died is noticed within seconds, so its partitions move to the others
        # quickly (Faust's 60 s defaults leave a restarted worker idle for a minute).
        broker_session_timeout=settings.session_timeout_s,
        broker_rebalance_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.session_timeout_s / 5),
        datadir=str(settings.data_dir / "faust"),
    )

    def raw_topic(name: str) -> faust.TopicT:
        return app.topic(
            name, value_type=bytes, key_type=bytes, value_serializer="raw", key_serializer="raw"
        )

    alerts_in, telemetry_in, status_in = (
        raw_topic(n) for n in (topics.alerts, topics.telemetry, topics.status)
    )
    receipts_out, dead_letters = raw_topic(topics.receipts), raw_topic(topics.dead_letters)
    store_opened = asyncio.Event()
    opening = asyncio.Lock()  # the three agents start together; the pool opens once

    async def ensure_store() -> None:
        async with opening:
            if not store_opened.is_set():
                await store.open()
                store_opened.set()

    async def send_receipt(
        device: DeviceRef, message_id: str, status: ReceiptStatus, reason: str | None = None
    ) -> None:
        receipt = Receipt(
            id=f"r.{message_id}",
            message_id=message_id,
            device=device,
            status=status,
            received_at=datetime.now(UTC),
            reason=reason,
        )
        await receipts_out.send(key=device.id.encode(), value=encode(receipt))

    async def dead_letter(event: faust.EventT, error: Exception) -> None:
        message = event.message
        record = DeadLetter(
            source_topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            error_class=type(error).__name__,
            message=str(error),
            key=message.key,
            value=message.value
            if isinstance(message.value, bytes)
            else bytes(message.value or b""),
            original_headers=tuple(header_map(message.headers).items()),
        )
        counters[f"dead_letter.{record.error_class}"] += 1
        log.warning(
            "dead-lettered %s[%s]@%s: %s: %s",
            record.source_topic,
            record.partition,
            record.offset,
            record.error_class,
            record.message,
        )
        await dead_letters.send(key=record.key, value=record.value, headers=record.headers())
        device, message_id = _rejectable(record.value, header_map(message.headers))
        if device is not None and message_id is not None:
            await send_receipt(
                device,
                message_id,
                ReceiptStatus.REJECTED,
                f"{record.error_class}: {record.message}",
            )

    async def with_db_retry(what: str, action: Any) -> Any:
        delay = 0.5
        while True:
            try:
                await ensure_store()
                return await action()
            except (psycopg.OperationalError, psycopg.errors.AdminShutdown) as exc:
                log.error(
                    "database unavailable while storing %s (%s); retrying in %.1fs",
                    what,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    async def handle(event: faust.EventT) -> None:
        """Process one record; every failure ends as a dead letter, never as an exception."""
        try:
            headers = header_map(event.message.headers)
            _address, message = validate_record(event.message.value, headers, registry)
            position = KafkaPosition(
                event.message.topic, event.message.partition, event.message.offset
            )
            if isinstance(message, Alert):
                await with_db_retry(message.id, lambda: store.store_alert(message, position))
                await send_receipt(message.device, message.id, ReceiptStatus.STORED)
                counters["alerts.stored"] += 1
            elif isinstance(message, Telemetry):
                await with_db_retry(message.id, lambda: store.store_telemetry(message))
                counters["telemetry.stored"] += 1
            elif isinstance(message, Status):
                await with_db_retry(message.device.id, lambda: store.store_status(message))
                counters["status.stored"] += 1
        except ContractError as exc:
            await dead_letter(event, exc)
        except Exception as exc:  # the boundary: one bad message must not stop the stream
            log.exception("unexpected error on %s@%s", event.message.topic, event.message.offset)
            await dead_letter(event, exc)

    async def consume(stream: faust.StreamT) -> None:
        async for event in stream.events():
            await handle(event)

    app.agent(alerts_in, name="alerts")(consume)
    app.agent(telemetry_in, name="telemetry")(consume)
    app.agent(status_in, name="status")(consume)

    @app.timer(interval=30.0)
    async def report_counters() -> None:
        if counters:
            log.info("stream counters: %s", dict(counters))

    return app


def _rejectable(value: bytes, headers: dict[str, bytes]) -> tuple[DeviceRef | None, str | None]:
    """The device and message id to send a ``rejected`` receipt to, when both can be read."""
    try:
        address = TopicAddress.parse(headers[MQTT_TOPIC_HEADER].decode())
        raw = json.loads(value)
        message_id = raw.get("id") if isinstance(raw, dict) else None
        device = DeviceRef(site=address.site, kind=address.device_kind, id=address.device_id)
    except (KeyError, ValueError, ContractError, UnicodeDecodeError):
        return None, None
    if not isinstance(message_id, str) or raw.get("type") != "alert":
        return None, None
    return device, message_id
