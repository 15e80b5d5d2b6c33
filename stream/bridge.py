"""The MQTT → Kafka bridge, and receipts back from Kafka to MQTT.

Uplink: a shared subscription (``$share/{group}/...``, ``services.mqtt.share_group``) lets
several bridges split the load (each gets whole messages, round-robin: a device's messages
can reach Kafka through two bridges in another order than it sent them; the worker orders
by event time and takes late data, and per-device order was never promised across a
reconnect either). Messages arriving together are produced to Kafka as record batches
(:mod:`citywatch.stream.bridge_uplink`) with ``acks=all`` (``services.kafka.acks``), keyed
by where they happened (:mod:`citywatch.stream.partitioning`), and each is acknowledged to
the broker (paho manual ack) only after Kafka acknowledged its batch: a batch Kafka refused
leaves its messages unacked, retried, and redelivered by the broker if the bridge dies. The client id is fixed and the session persists
(``clean_start=False`` with an expiry), so a restarted bridge gets its unacknowledged
messages again. Downlink: receipts from the stream are published to each device's
``receipts`` topic, and their Kafka offsets committed only after the broker took them.

Kafka faults heal without a hand restart: a send that keeps failing makes the bridge
recreate missing topics (an embedded broker restarts empty) and, after
:data:`REBUILD_AFTER_S`, rebuild its producer (whose producer id and metadata the restarted
broker no longer knows); the downlink consumer is restarted with backoff whenever it fails.
A message Kafka will never take (larger than its request limit) is not retried forever: its
head goes to the dead-letter topic with the reason, and its device gets a ``rejected``
receipt, so the gateway quarantines it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordTooLargeError

from citywatch.contracts import (
    Channel,
    ContractError,
    KafkaTopics,
    Receipt,
    ReceiptStatus,
    decode,
    encode,
)
from citywatch.contracts.topics import UPLINK_CHANNELS, fleet_filter, workorder_events_topic
from citywatch.mqtt_client import BrokerSettings, connect, make_client, refused
from citywatch.stream.bridge_uplink import MAX_REQUEST_BYTES, Routed, Router, produce
from citywatch.stream.deadletter import DeadLetter
from citywatch.stream.kafka_admin import ensure_topics
from citywatch.stream.partitioning import DevicePositions
from citywatch.stream.rejections import rejectable
from citywatch.stream.settings import FETCH_MAX_WAIT_MS, StreamSettings
from citywatch.stream.validate import MQTT_TOPIC_HEADER

log = logging.getLogger(__name__)
SESSION_EXPIRY_S = 24 * 3600
RETRY_MAX_S = 10.0
REBUILD_AFTER_S = 5.0
"""A producer whose sends have failed this long is replaced by a new one."""
MAX_ROUNDS = 3
"""Rounds of messages waiting for Kafka at once: more overlap the MQTT delivery with Kafka's
acknowledgement (latency), fewer make bigger batches (throughput)."""
DEAD_LETTER_HEAD_BYTES = 64 * 1024
"""How much of a message too large for Kafka its dead letter keeps (with size and sha256)."""


@dataclass
class BridgeStats:
    forwarded: Counter[str] = field(default_factory=Counter)
    receipts: int = 0
    unroutable: int = 0
    too_large: int = 0
    producer_rebuilds: int = 0
    downlink_restarts: int = 0
    received: int = 0
    kafka_up: bool = False
    """Whether the last round of sends to Kafka was acknowledged (readiness)."""


def too_large_for_kafka(error: BaseException) -> bool:
    """Kafka will never take this record, however often it is sent."""
    return isinstance(error, MessageSizeTooLargeError | RecordTooLargeError)


def oversized_dead_letter(mqtt_topic: str, payload: bytes, error: BaseException) -> DeadLetter:
    """The dead letter of a message too large for Kafka: its head, its size and digest."""
    return DeadLetter(
        source_topic=f"mqtt:{mqtt_topic}", partition=-1, offset=-1,
        error_class="MessageTooLarge",
        message=f"{len(payload)} bytes is more than Kafka takes ({type(error).__name__}); the"
        f" first {DEAD_LETTER_HEAD_BYTES} bytes are kept (send evidence by reference)",
        key=mqtt_topic.encode(), value=payload[:DEAD_LETTER_HEAD_BYTES],
        original_headers=(
            (MQTT_TOPIC_HEADER, mqtt_topic.encode()),
            ("original_size", str(len(payload)).encode()),
            ("original_sha256", hashlib.sha256(payload).hexdigest().encode()),
        ),
    )  # fmt: skip


class Bridge:
    """One bridge instance; run several with different ``bridge_id`` to share the load."""

    def __init__(self, settings: StreamSettings, positions: DevicePositions | None = None) -> None:
        self.settings = settings
        self.positions: DevicePositions = positions or {}
        self.topics = KafkaTopics(settings.topic_prefix)
        self.stats = BridgeStats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._producer: AIOKafkaProducer | None = None
        self._connected = threading.Event()
        self._inbox: list[mqtt.MQTTMessage] = []  # filled by paho's thread, drained by the loop
        self._inbox_lock = threading.Lock()
        self._draining = False  # a drain is due: paho's thread need not wake the loop
        self._router = Router(self.topics, self.positions, settings.geo_resolution)
        self._forwarding: set[asyncio.Task[None]] = set()
        self._rebuilding = asyncio.Lock()
        self._broker = BrokerSettings(
            host=settings.mqtt_host,
            port=settings.mqtt_port,
            username=settings.mqtt_username,
            password=settings.mqtt_password,
            tls=settings.mqtt_tls,
            tls_ca_file=settings.mqtt_ca_file,
            tls_cert_file=settings.mqtt_cert_file,
            tls_key_file=settings.mqtt_key_file,
            reconnect_max_s=30,
            session_expiry_s=SESSION_EXPIRY_S,
        )
        self._client = make_client(
            f"citywatch-bridge-{settings.bridge_id}", self._broker, manual_ack=True
        )
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    @property
    def connected(self) -> bool:
        """Whether the MQTT session is up and subscribed (readiness)."""
        return self._connected.is_set()

    async def run(self, stop: asyncio.Event) -> BridgeStats:
        self._loop = asyncio.get_running_loop()
        await ensure_topics(self.settings, self.topics)
        self._producer = await self._start_producer()
        self.stats.kafka_up = True
        receipts = asyncio.create_task(self._supervise_downlink(stop), name="downlink")
        try:
            connect(self._client, self._broker)
            await stop.wait()
        finally:
            self._client.disconnect()
            self._client.loop_stop()
            receipts.cancel()
            await asyncio.gather(receipts, return_exceptions=True)
            await self._producer.stop()
        return self.stats

    async def _start_producer(self) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(
            **self.settings.kafka_client_options,
            acks=self.settings.acks,
            enable_idempotence=self.settings.kafka_idempotent,
            # No linger: a round is already one record batch per partition, as large as what
            # arrived while earlier rounds waited for Kafka (Tansu hands a consumer one record
            # batch per fetch, so under load the app still reads big ones). A batch handed
            # over with send_batch lingers like any other, and the next batch for its
            # partition waits for it to drain: 20 ms of linger cost 65 ms at p50 at 500/s.
            linger_ms=0,
            max_batch_size=MAX_REQUEST_BYTES,
            max_request_size=MAX_REQUEST_BYTES,
        )
        await producer.start()
        return producer

    async def _heal(self, failed: AIOKafkaProducer, failing_for_s: float) -> None:
        """After failed sends: recreate missing topics; replace a producer failing too long."""
        try:
            await ensure_topics(self.settings, self.topics)
        except Exception as exc:  # the broker may still be down: the next round tries again
            log.warning("cannot check the Kafka topics yet: %s", exc)
        if failing_for_s < REBUILD_AFTER_S:
            return
        async with self._rebuilding:
            stopping = failed.stop  # (bound before the check, which narrows ``failed``)
            if self._producer is not failed:  # another forwarding task rebuilt it already
                return
            log.warning(
                "Kafka sends have failed for %.0f s: rebuilding the producer", failing_for_s
            )
            with contextlib.suppress(Exception):
                await asyncio.wait_for(stopping(), 5.0)
            try:
                self._producer = await self._start_producer()
                self.stats.producer_rebuilds += 1
            except Exception as exc:
                log.warning("cannot start a new Kafka producer yet: %s", exc)

    # -- uplink: MQTT → Kafka -------------------------------------------------------------
    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: object,
        reason: object,
        properties: object,
    ) -> None:
        if refused(reason):
            log.error(
                "broker refused the bridge: %s (check services.mqtt.bridge credentials)", reason
            )
            return
        group = self.settings.share_group
        client.subscribe(
            [(f"$share/{group}/{fleet_filter(channel)}", 1) for channel in UPLINK_CHANNELS]
        )
        self._connected.set()
        log.info("bridge connected to %s", self._broker.url)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: object,
        reason: object,
        properties: object,
    ) -> None:
        self._connected.clear()
        log.warning("bridge disconnected from MQTT (%s); reconnecting", reason)

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        """Queue the message for the event loop, waking it only when no drain is due (a
        wake-up crosses threads: a tenth of the bridge's time when it was one per burst)."""
        assert self._loop is not None
        with self._inbox_lock:
            self._inbox.append(message)
            wake, self._draining = not self._draining, True
        if wake:
            self._loop.call_soon_threadsafe(self._drain_inbox)

    def _drain_inbox(self) -> None:
        """Forward what paho queued as a round, up to :data:`MAX_ROUNDS` in flight: what
        arrives while they wait for Kafka goes in the next, so rounds grow with the load
        (Kafka takes one batch per partition per request) and no backlog of small batches
        builds up; a lone message goes at once."""
        with self._inbox_lock:
            if len(self._forwarding) >= MAX_ROUNDS:
                return  # still due: a round that ends drains again
            messages, self._inbox = self._inbox, []
            self._draining = False
        if not messages:
            return
        self.stats.received += len(messages)
        task = asyncio.create_task(self._forward(messages))
        self._forwarding.add(task)
        task.add_done_callback(self._forwarded)

    def _forwarded(self, task: asyncio.Task[None]) -> None:
        self._forwarding.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            # Left unacknowledged: the broker sends them again when the bridge reconnects.
            log.error("forwarding MQTT messages to Kafka failed", exc_info=exc)
        if not task.cancelled() and self._draining:
            self._drain_inbox()

    def _route(self, message: mqtt.MQTTMessage) -> Routed:
        """The Kafka topic and key of one MQTT message (dead letters when unroutable)."""
        try:
            return Routed(message, *self._router.route(message.topic, message.payload))
        except ContractError as exc:
            # Not a citywatch topic shape: keep the bytes and the reason in the dead letters.
            self.stats.unroutable += 1
            log.warning("unroutable MQTT topic %r: %s", message.topic, exc)
            return Routed(message, self.topics.dead_letters, message.topic.encode())

    async def _forward(self, messages: list[mqtt.MQTTMessage]) -> None:
        """Produce MQTT messages to Kafka in record batches, retrying until acked; ack each
        to MQTT only after Kafka acknowledged its batch.

        A batch refused is retried whole (its messages unacked meanwhile; if the bridge dies
        the broker redelivers them); one Kafka will never take (larger than its request
        limit) is dead-lettered and refused instead, after its batch is split to find it.
        """
        routed = [self._route(message) for message in messages]
        delay, failing_since = 0.2, 0.0
        while routed:
            producer = self._producer
            assert producer is not None
            sent = await produce(producer, routed)
            outcomes = await asyncio.gather(*(future for _, future in sent), return_exceptions=True)
            retry: list[Routed] = []
            error: BaseException | None = None
            for (members, _), outcome in zip(sent, outcomes, strict=True):
                if not isinstance(outcome, BaseException):
                    self._acked(members)
                elif not isinstance(outcome, KafkaError):
                    raise outcome
                else:
                    error = outcome
                    retry += await self._unsent(members, outcome)
            if retry:
                log.error(
                    "Kafka refused %d messages (%s); retrying in %.1fs", len(retry), error, delay
                )
                failing_since = failing_since or time.monotonic()
                self.stats.kafka_up = False
                await self._heal(producer, time.monotonic() - failing_since)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
            else:
                self.stats.kafka_up = True
            routed = retry

    def _acked(self, members: Sequence[Routed]) -> None:
        """Kafka has them: acknowledge them to the MQTT broker."""
        for item in members:
            self._client.ack(item.message.mid, item.message.qos)
        if members:
            self.stats.forwarded[members[0].topic] += len(members)

    async def _unsent(self, members: list[Routed], error: KafkaError) -> list[Routed]:
        """What of a refused batch is to be sent again: all of it, but a message too large
        for Kafka is refused for good (alone in its batch; in a batch of several, each is
        sent again alone to find it)."""
        if not too_large_for_kafka(error):
            return members
        if len(members) > 1:
            for item in members:
                item.alone = True
            return members
        return [] if await self._refuse(members[0].message, error) else members

    async def _refuse(self, message: mqtt.MQTTMessage, error: BaseException) -> bool:
        """Dead-letter a message too large for Kafka, answer its device with a ``rejected``
        receipt, and ack it to MQTT; False (to retry) while the dead letter cannot be sent."""
        assert self._producer is not None
        payload = bytes(message.payload)
        letter = oversized_dead_letter(message.topic, payload, error)
        try:
            await (
                await self._producer.send(
                    self.topics.dead_letters, letter.value, key=letter.key, headers=letter.headers()
                )
            )
        except KafkaError as exc:
            log.warning("cannot dead-letter a message too large for Kafka yet: %s", exc)
            return False
        self.stats.too_large += 1
        log.error(
            "dead-lettered a %d-byte message from %s: more than Kafka takes",
            len(payload), message.topic, extra={"mqtt_topic": message.topic},
        )  # fmt: skip
        answer = rejectable(payload, {MQTT_TOPIC_HEADER: message.topic.encode()})
        if answer is not None:
            device, message_id = answer
            with contextlib.suppress(ValueError):  # an id that is not valid: nothing to answer
                receipt = Receipt(
                    id=f"r.{message_id}", message_id=message_id, device=device,
                    status=ReceiptStatus.REJECTED, received_at=datetime.now(UTC),
                    reason=f"{letter.error_class}: {letter.message}",
                )  # fmt: skip
                await self._publish_all([(device.address(Channel.RECEIPTS).topic, encode(receipt))])
        self._client.ack(message.mid, message.qos)
        return True

    # -- downlink: Kafka receipts → MQTT ---------------------------------------------------
    async def _supervise_downlink(self, stop: asyncio.Event) -> None:
        """Run the downlink until ``stop``, restarting it with backoff when it fails (a
        broker restart loses the group's offsets and topics: receipts must not stop)."""
        delay = 0.5
        while not stop.is_set():
            try:
                await self._relay_downlink(stop)
                return
            except Exception as exc:  # the boundary of the downlink: log, count, go on
                self.stats.downlink_restarts += 1
                log.error("the receipts relay failed (%s); restarting it in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                with contextlib.suppress(Exception):
                    await ensure_topics(self.settings, self.topics)

    async def _relay_downlink(self, stop: asyncio.Event) -> None:
        """Receipts to each device, work-order events to the center topic, in Kafka order.

        A batch is published as a whole, then awaited, then its offsets committed: a crash
        in between republishes (receipts and events are idempotent by id downstream).
        """
        consumer = AIOKafkaConsumer(
            self.topics.receipts,
            self.topics.workorder_events,
            **self.settings.kafka_client_options,
            group_id=f"{self.settings.topic_prefix}-bridge-downlink",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,  # keeps receipts prompt on Tansu
        )
        await consumer.start()
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=500, max_records=1000)
                pending = [
                    (topic, record.value)
                    for records in batch.values()
                    for record in records
                    if (topic := self._downlink_topic(record.topic, record.value)) is not None
                ]
                if pending:
                    await self._publish_all(pending)
                if batch:
                    await consumer.commit()
        finally:
            await consumer.stop()

    def _downlink_topic(self, kafka_topic: str, value: bytes) -> str | None:
        if kafka_topic == self.topics.workorder_events:
            return workorder_events_topic(self.settings.site)
        try:
            receipt = decode(value, Receipt)
        except ContractError as exc:
            log.error("dropping an unreadable receipt from Kafka: %s", exc)
            return None
        return receipt.device.address(Channel.RECEIPTS).topic

    async def _publish_all(self, messages: list[tuple[str, bytes]]) -> None:
        """Publish at QoS 1 and wait until the broker acknowledged every one (retrying)."""
        while messages:
            await asyncio.to_thread(self._connected.wait, 5.0)
            infos = [(m, self._client.publish(m[0], m[1], qos=1)) for m in messages]
            await asyncio.to_thread(_wait_for_publish, [info for _, info in infos], 10.0)
            messages = [m for m, info in infos if not info.is_published()]
            self.stats.receipts += len(infos) - len(messages)
            if messages:
                log.warning("%d downlink messages not yet published; retrying", len(messages))
                await asyncio.sleep(0.5)


def _wait_for_publish(infos: list[mqtt.MQTTMessageInfo], timeout_s: float) -> None:
    """Wait (in a worker thread) until the broker acknowledged ``infos`` or time ran out."""
    deadline = time.monotonic() + timeout_s
    for info in infos:
        if info.rc == mqtt.MQTT_ERR_SUCCESS and not info.is_published():
            info.wait_for_publish(max(0.0, deadline - time.monotonic()))
