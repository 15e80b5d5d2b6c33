"""Faust's Kafka transport with a fetch wait that suits Tansu.

Faust creates its worker consumer with ``fetch_max_wait_ms=1500`` and no setting to change
it. Tansu answers a fetch that finds nothing new only when that wait runs out (records
arriving meanwhile do not end it early; measured: p50 Kafka → database 540 ms at 1500 ms,
150 ms at 100 ms), so a worker that has caught up sees the next alert up to 1.5 s late:
the p99 MQTT → work order latency was over a second at 500 alerts/s for that alone. A
short wait costs an empty fetch round trip every :data:`FETCH_MAX_WAIT_MS` when idle.
"""

from __future__ import annotations

from typing import Any

import faust
from aiokafka import AIOKafkaConsumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TransportT

from citywatch.stream.settings import FETCH_MAX_WAIT_MS


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when the consumer starts
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class StreamApp(faust.App):
    """A Faust app whose consumer uses :data:`FETCH_MAX_WAIT_MS` (see the module docstring)."""

    def _new_transport(self) -> TransportT:
        return _Transport(self.conf.broker_consumer, self)
