"""The MQTT → Kafka bridge, and receipts back from Kafka to MQTT.

Uplink: a shared subscription (``$share/{group}/...``) lets several bridges split the load;
each MQTT message is produced to Kafka with ``acks=all`` and only then acknowledged to the
broker (paho manual ack). The client id is fixed and the session persists
(``clean_start=False`` with an expiry), so a restarted bridge gets its unacknowledged
messages again. Downlink: receipts from the stream are published to each device's
``receipts`` topic, and their Kafka offsets committed only after the broker took them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from citywatch.contracts import Channel, ContractError, KafkaTopics, Receipt, TopicAddress, decode
from citywatch.contracts.topics import UPLINK_CHANNELS, fleet_filter, workorder_events_topic
from citywatch.mqtt_client import BrokerSettings, connect, make_client, refused
from citywatch.stream.kafka_admin import ensure_topics
from citywatch.stream.partitioning import DevicePositions, partition_key
from citywatch.stream.settings import FETCH_MAX_WAIT_MS, StreamSettings
from citywatch.stream.validate import MQTT_TOPIC_HEADER

log = logging.getLogger(__name__)
SESSION_EXPIRY_S = 24 * 3600


@dataclass
class BridgeStats:
    forwarded: Counter[str] = field(default_factory=Counter)
    receipts: int = 0
    unroutable: int = 0


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
        self._forwarding: set[asyncio.Task[None]] = set()
        self._broker = BrokerSettings(
            host=settings.mqtt_host,
            port=settings.mqtt_port,
            username=settings.mqtt_username,
            password=settings.mqtt_password,
            reconnect_max_s=30,
            session_expiry_s=SESSION_EXPIRY_S,
        )
        self._client = make_client(
            f"citywatch-bridge-{settings.bridge_id}", self._broker, manual_ack=True
        )
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    async def run(self, stop: asyncio.Event) -> BridgeStats:
        self._loop = asyncio.get_running_loop()
        await ensure_topics(self.settings, self.topics)
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_servers,
            acks="all",
            enable_idempotence=self.settings.kafka_idempotent,
            # Tansu hands a consumer one record batch per fetch: bigger producer batches
            # (a few ms of linger under load) multiply what the Faust app reads per round trip.
            linger_ms=20,
            max_batch_size=1048576,
        )
        await self._producer.start()
        receipts = asyncio.create_task(self._relay_downlink(stop), name="downlink")
        connect(self._client, self._broker)
        try:
            await stop.wait()
        finally:
            self._client.disconnect()
            self._client.loop_stop()
            receipts.cancel()
            await asyncio.gather(receipts, return_exceptions=True)
            await self._producer.stop()
        return self.stats

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
        log.info(
            "bridge connected to mqtt://%s:%s", self.settings.mqtt_host, self.settings.mqtt_port
        )

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
        """Queue the message for the event loop; one wake-up per burst, not per message."""
        assert self._loop is not None
        with self._inbox_lock:
            self._inbox.append(message)
            wake = len(self._inbox) == 1
        if wake:
            self._loop.call_soon_threadsafe(self._drain_inbox)

    def _drain_inbox(self) -> None:
        with self._inbox_lock:
            messages, self._inbox = self._inbox, []
        task = asyncio.create_task(self._forward(messages))
        self._forwarding.add(task)
        task.add_done_callback(self._forwarded)

    def _forwarded(self, task: asyncio.Task[None]) -> None:
        self._forwarding.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            # Left unacknowledged: the broker sends them again when the bridge reconnects.
            log.error("forwarding MQTT messages to Kafka failed", exc_info=exc)

    def _route(self, message: mqtt.MQTTMessage) -> tuple[str, bytes]:
        """The Kafka topic and key of one MQTT message (dead letters when unroutable)."""
        try:
            address = TopicAddress.parse(message.topic)
            return (
                self.topics.for_channel(address.channel),
                partition_key(address, bytes(message.payload), self.positions),
            )
        except ContractError as exc:
            # Not a citywatch topic shape: keep the bytes and the reason in the dead letters.
            self.stats.unroutable += 1
            log.warning("unroutable MQTT topic %r: %s", message.topic, exc)
            return self.topics.dead_letters, message.topic.encode()

    async def _forward(self, messages: list[mqtt.MQTTMessage]) -> None:
        """Produce MQTT messages to Kafka, retrying until acked; ack each to MQTT after Kafka.

        All are handed to the producer before any ack is awaited, so they share record
        batches (one produce request for a burst instead of one per message).
        """
        assert self._producer is not None
        routed = [(message, *self._route(message)) for message in messages]
        delay = 0.2
        while routed:
            sent = []
            for message, kafka_topic, key in routed:
                headers = [(MQTT_TOPIC_HEADER, message.topic.encode())]
                try:
                    sent.append(
                        await self._producer.send(
                            kafka_topic, message.payload, key=key, headers=headers
                        )
                    )
                except KafkaError as exc:
                    sent.append(_failed(exc))
            outcomes = await asyncio.gather(*sent, return_exceptions=True)
            retry = []
            for item, outcome in zip(routed, outcomes, strict=True):
                message, kafka_topic, _ = item
                if isinstance(outcome, BaseException):
                    if not isinstance(outcome, KafkaError):
                        raise outcome
                    retry.append(item)
                    continue
                self._client.ack(message.mid, message.qos)
                self.stats.forwarded[kafka_topic] += 1
            if retry:
                log.error(
                    "Kafka refused %d messages (%s); retrying in %.1fs",
                    len(retry),
                    next(o for o in outcomes if isinstance(o, BaseException)),
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            routed = retry

    # -- downlink: Kafka receipts → MQTT ---------------------------------------------------
    async def _relay_downlink(self, stop: asyncio.Event) -> None:
        """Receipts to each device, work-order events to the center topic, in Kafka order.

        A batch is published as a whole, then awaited, then its offsets committed: a crash
        in between republishes (receipts and events are idempotent by id downstream).
        """
        consumer = AIOKafkaConsumer(
            self.topics.receipts,
            self.topics.workorder_events,
            bootstrap_servers=self.settings.kafka_servers,
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


def _failed(exc: BaseException) -> asyncio.Future[object]:
    """A future that already failed with ``exc`` (a send refused before it was queued)."""
    future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    future.set_exception(exc)
    return future
