"""The bridge's uplink step: a burst of MQTT messages routed and produced to Kafka as record
batches, one per (topic, partition), each message's outcome its batch's.

Routing reads only what a key needs (:func:`~citywatch.stream.partitioning.partition_key`):
the topic, and an alert's or a dock message's position from its payload; everything else a
device sends (telemetry, status, evidence: the bulk) is keyed by its device's configured
place, so its topic alone decides, and that is looked up once per topic. The worker
validates; the bridge never builds a message object.

Producing: ``producer.send`` costs a partitioner call, a future and an accumulator look-up per
record; ``create_batch``/``send_batch`` (as the worker does, :mod:`~citywatch.stream.
kafka_batches`, whose grouping this reuses) build one record batch per partition, with the
MQTT topic in each record's header, and give one future per batch. The caller acks a batch's
messages to MQTT when that future resolves, and only then.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from citywatch.contracts import Channel, KafkaTopics, TopicAddress
from citywatch.stream.kafka_batches import by_partition
from citywatch.stream.partitioning import DevicePositions, partition_key
from citywatch.stream.validate import MQTT_TOPIC_HEADER

MAX_REQUEST_BYTES = 1_048_576
"""The producer's ``max_request_size`` (aiokafka's default): a record larger is refused."""
TOPIC_CACHE_SIZE = 100_000
"""Routes kept per MQTT topic (a fleet's topics are bounded; past this it starts again)."""


@dataclass(slots=True)
class Routed:
    """One MQTT message on its way: where it goes in Kafka, and whether it is to go alone
    (in a batch of its own: a batch the broker refused as too large is split to find it)."""

    message: mqtt.MQTTMessage
    topic: str
    key: bytes
    alone: bool = False


@dataclass(frozen=True, slots=True)
class _Route:
    topic: str
    address: TopicAddress
    key: bytes | None
    """The key, when the topic alone decides it; None when the payload does."""


class Router:
    """Kafka topic and key of each MQTT message; raises ContractError for a topic that is
    not a citywatch device topic (the caller dead-letters it)."""

    def __init__(self, topics: KafkaTopics, positions: DevicePositions, resolution: int) -> None:
        self.topics, self.positions, self.resolution = topics, positions, resolution
        self._routes: dict[str, _Route] = {}

    def route(self, mqtt_topic: str, payload: bytes | bytearray) -> tuple[str, bytes]:
        route = self._routes.get(mqtt_topic)
        if route is None:
            route = self._route_of(mqtt_topic)
        if route.key is not None:
            return route.topic, route.key
        key = partition_key(route.address, bytes(payload), self.positions, self.resolution)
        return route.topic, key

    def _route_of(self, mqtt_topic: str) -> _Route:
        address = TopicAddress.parse(mqtt_topic)
        # partition_key reads the payload of alerts and of docks' messages only
        by_payload = address.channel is Channel.ALERTS or address.device_kind == "dock"
        key = None if by_payload else partition_key(address, b"", self.positions, self.resolution)
        if len(self._routes) >= TOPIC_CACHE_SIZE:
            self._routes.clear()
        route = self._routes[mqtt_topic] = _Route(
            self.topics.for_channel(address.channel), address, key
        )
        return route


Sent = tuple[list[Routed], "asyncio.Future[object]"]
"""The messages of one record batch and the future Kafka's acknowledgement resolves."""


async def produce(producer: AIOKafkaProducer, routed: Sequence[Routed]) -> list[Sent]:
    """Hand ``routed`` to the producer as one record batch per (topic, partition) (more when
    one fills up, one per message marked ``alone``); each batch's messages with its future,
    which fails with the reason when the batch was refused before it was queued."""
    failed: list[Sent] = []
    topics = {item.topic for item in routed}
    for topic in list(topics):
        try:
            await producer.client._wait_on_metadata(topic)
        except KafkaError as exc:  # no metadata (Kafka down, topic gone): fail its messages
            topics.discard(topic)
            failed.append(([r for r in routed if r.topic == topic], _failed(exc)))
    records = [(item.topic, item.key, item) for item in routed if item.topic in topics]

    def partition_of(topic: str, key: bytes) -> int:
        return int(producer._partition(topic, None, None, None, key, None))

    sent: list[Sent] = []
    for (topic, partition), items in by_partition(records, partition_of).items():
        members: list[Routed] = []
        batch = producer.create_batch()
        for key, item in items:
            value = item.message.payload
            headers = [(MQTT_TOPIC_HEADER, item.message.topic.encode())]
            size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)
            if size > MAX_REQUEST_BYTES:
                too_large = MessageSizeTooLargeError(
                    f"the record is {size} bytes, more than {MAX_REQUEST_BYTES}"
                )
                failed.append(([item], _failed(too_large)))
                continue
            shares = members and not (item.alone or members[-1].alone)
            if not (shares and batch.append(key=key, value=value, timestamp=None, headers=headers)):
                if members:  # full, or one of them goes alone: this batch goes, a new one
                    sent.append((members, await _send(producer, batch, topic, partition)))
                    members, batch = [], producer.create_batch()
                # an empty batch takes its first record, whatever its size
                batch.append(key=key, value=value, timestamp=None, headers=headers)
            members.append(item)
        if members:
            sent.append((members, await _send(producer, batch, topic, partition)))
    return sent + failed


async def _send(
    producer: AIOKafkaProducer, batch: object, topic: str, partition: int
) -> asyncio.Future[object]:
    try:
        future: asyncio.Future[object] = await producer.send_batch(
            batch, topic, partition=partition
        )
        return future
    except KafkaError as exc:
        return _failed(exc)


def _failed(exc: BaseException) -> asyncio.Future[object]:
    """A future that already failed with ``exc`` (a batch refused before it was queued)."""
    future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    future.set_exception(exc)
    return future
