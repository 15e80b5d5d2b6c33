"""The stream tier's Prometheus metrics: the worker's and the bridge's, each in its own
registry (a process serves one of them, see :mod:`citywatch.metrics_server`).

What the hot path pays: a lane's batch adds a few counter increments and two histogram
observations per batch, and notes each partition's last offset (for the lag): about 100 ns
a record in all, measured on a 5000-record batch. The counts the worker and the bridge keep
anyway (stored, redelivered, dead letters by class; forwarded by topic) are read only when
Prometheus scrapes (:class:`WorkerCounts`, :class:`BridgeCollector`). Labels are topics,
partitions and error classes, never a device or an alert id.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter as Counts
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from citywatch.metrics_server import Health, Heartbeat, component_registry

if TYPE_CHECKING:
    import faust
    from faust.types import TP, Message

    from citywatch.stream.bridge import Bridge
    from citywatch.stream.worker_db import WorkerDatabase

log = logging.getLogger(__name__)

WORKER_HEALTH = Health(starting="partitions")
WORKER_REGISTRY = component_registry(WORKER_HEALTH)
BRIDGE_HEALTH = Health(starting="mqtt")
BRIDGE_REGISTRY = component_registry(BRIDGE_HEALTH)

HEARTBEAT_S = 5.0
"""How often the worker's and the bridge's loops beat, and the worker measures its lag."""
SILENT_MAX_S = 60.0
"""A loop silent this long is reported dead (``/healthz`` 503)."""

_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)

# -- worker ---------------------------------------------------------------------------------
MESSAGES_IN = Counter(
    "citywatch_stream_messages_in", "Records the worker's lanes took from Kafka, by topic.",
    ["topic"], registry=WORKER_REGISTRY,
)  # fmt: skip
BATCH_RECORDS = Histogram(
    "citywatch_stream_batch_records", "Records in one batch handed to a lane, by topic.",
    ["topic"], buckets=_BATCH, registry=WORKER_REGISTRY,
)  # fmt: skip
BATCH_SECONDS = Histogram(
    "citywatch_stream_batch_seconds",
    "Handling one batch (validation, transaction, receipts sent), by topic.",
    ["topic"], buckets=_SECONDS, registry=WORKER_REGISTRY,
)  # fmt: skip
COMMIT_SECONDS = Histogram(
    "citywatch_stream_commit_seconds",
    "One database step from taking a connection to its commit (failed attempts included).",
    buckets=_SECONDS, registry=WORKER_REGISTRY,
)  # fmt: skip
MESSAGES_OUT = Counter(
    "citywatch_stream_messages_out",
    "Receipts and work-order events the Kafka broker acknowledged, by topic.",
    ["topic"], registry=WORKER_REGISTRY,
)  # fmt: skip
CONSUMER_LAG = Gauge(
    "citywatch_stream_consumer_lag",
    "Records in an assigned partition after the last one this worker handled.",
    ["topic", "partition"], registry=WORKER_REGISTRY,
)  # fmt: skip
ASSIGNED = Gauge(
    "citywatch_stream_assigned_partitions", "Partitions assigned to this worker.",
    registry=WORKER_REGISTRY,
)  # fmt: skip

_handled: dict[TP, int] = {}
"""The last offset each lane handled, per partition (the lag is measured from it)."""


def lane_batch(batch: Sequence[Message], seconds: float) -> None:
    """Count a batch a lane handled (every record of a batch is of one topic)."""
    topic = batch[0].topic
    MESSAGES_IN.labels(topic).inc(len(batch))
    BATCH_RECORDS.labels(topic).observe(len(batch))
    BATCH_SECONDS.labels(topic).observe(seconds)
    _handled.update((message.tp, message.offset) for message in batch)


def count_sent(records: Sequence[tuple[str, bytes, bytes]]) -> None:
    """Count records the broker acknowledged, by topic (one increment per topic)."""
    for topic, count in Counts(record[0] for record in records).items():
        MESSAGES_OUT.labels(topic).inc(count)


def lag_of(highwater: int | None, next_offset: int | None) -> int | None:
    """Records not yet handled: the partition's highwater (the offset its next record will
    get) less the next offset to handle; None while either is unknown."""
    if highwater is None or next_offset is None:
        return None
    return max(0, highwater - next_offset)


class WorkerCounts(Collector):
    """The worker's own counters (``Counter[str]`` shared by its handlers and timers),
    exposed at scrape time: ``<kind>.stored``, ``alerts.redelivered``, ``alerts.refused``,
    ``dead_letter.<error class>``, ``workorder_events`` and ``workorder_events.relayed``."""

    def __init__(self) -> None:
        self.counts: Mapping[str, int] = {}

    def collect(self) -> Iterator[Metric]:
        counts = dict(self.counts)  # one copy under the GIL: handlers keep counting meanwhile
        stored = CounterMetricFamily(
            "citywatch_stream_stored", "Messages stored new, by kind.", labels=["kind"]
        )
        redelivered = CounterMetricFamily(
            "citywatch_stream_redelivered", "Alerts that were stored already (a resend).",
            labels=["kind"],
        )  # fmt: skip
        dead = CounterMetricFamily(
            "citywatch_stream_dead_letters", "Records dead-lettered, by reason (error class).",
            labels=["reason"],
        )  # fmt: skip
        events = CounterMetricFamily(
            "citywatch_stream_workorder_events",
            "Work-order events sent: made by the worker, or relayed from the center's people.",
            labels=["source"],
        )
        refused = CounterMetricFamily(
            "citywatch_stream_alerts_refused", "Alerts the database refused (rejected receipts)."
        )
        refused.add_metric([], counts.get("alerts.refused", 0))
        events.add_metric(["worker"], counts.get("workorder_events", 0))
        events.add_metric(["people"], counts.get("workorder_events.relayed", 0))
        for key, value in sorted(counts.items()):
            kind, _, what = key.partition(".")
            if what == "stored":
                stored.add_metric([kind], value)
            elif what == "redelivered":
                redelivered.add_metric([kind], value)
            elif kind == "dead_letter":
                dead.add_metric([what], value)
        yield from (stored, redelivered, dead, events, refused)


WORKER_COUNTS = WorkerCounts()
WORKER_REGISTRY.register(WORKER_COUNTS)


class WorkerWatch:
    """The worker's heartbeat and lag, measured on its own event loop by a Faust timer,
    and its readiness: partitions assigned once, database reached."""

    def __init__(self, app: faust.App, db: WorkerDatabase) -> None:
        self.app, self.db = app, db
        self.heartbeat = Heartbeat(SILENT_MAX_S)
        self.assignments = 0
        self._labelled: set[TP] = set()

    def assigned(self, assigned: set[TP]) -> None:
        self.assignments += 1
        ASSIGNED.set(len(assigned))

    def partitions_probe(self) -> str | None:
        if not self.assignments:
            return "waiting for its first partition assignment from the consumer group"
        return None

    def database_probe(self) -> str | None:
        health = self.db.health
        if health is None or health.up is None:
            return "the database has not been reached yet"
        return None if health.up else "the database is unreachable (retrying)"

    async def tick(self) -> None:
        """Beat, and set the lag of each assigned partition (forgetting the others)."""
        self.heartbeat.beat()
        try:
            consumer = self.app.consumer
            assigned = consumer.assignment()
        except Exception as exc:  # not started yet, or between generations
            log.debug("no assignment to measure the lag of yet: %s", exc)
            return
        for tp in self._labelled - assigned:
            CONSUMER_LAG.remove(tp.topic, str(tp.partition))
        self._labelled &= assigned
        for tp in assigned:
            try:
                done = _handled.get(tp)
                next_offset = done + 1 if done is not None else await consumer.position(tp)
                lag = lag_of(consumer.highwater(tp), next_offset)
            except Exception as exc:  # a partition moving away mid-measure: next tick
                log.debug("cannot measure the lag of %s: %s", tp, exc)
                continue
            if lag is not None:
                CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(lag)
                self._labelled.add(tp)


def instrument_worker(app: faust.App, db: WorkerDatabase, counts: Mapping[str, int]) -> None:
    """Expose the worker's counts, and measure its heartbeat, lag and readiness (served
    when ``citywatch stream app --metrics-port`` is given)."""
    WORKER_COUNTS.counts = counts
    watch = WorkerWatch(app, db)

    def assigned(_: Any, assigned: set[TP], **__: Any) -> None:
        watch.assigned(assigned)

    app.on_partitions_assigned.connect(assigned)  # type: ignore[arg-type]
    app.timer(HEARTBEAT_S, name="metrics_heartbeat_and_lag")(watch.tick)
    WORKER_HEALTH.liveness["event_loop"] = watch.heartbeat.probe
    WORKER_HEALTH.readiness["partitions"] = watch.partitions_probe
    WORKER_HEALTH.readiness["database"] = watch.database_probe


# -- bridge ---------------------------------------------------------------------------------
class BridgeCollector(Collector):
    """The bridge's :class:`~citywatch.stream.bridge.BridgeStats`, read at scrape time."""

    def __init__(self) -> None:
        self.bridges: list[Bridge] = []

    def collect(self) -> Iterator[Metric]:
        received = CounterMetricFamily(
            "citywatch_bridge_messages_in", "MQTT messages the bridge received from devices."
        )
        forwarded = CounterMetricFamily(
            "citywatch_bridge_messages_out", "Messages Kafka acknowledged, by Kafka topic.",
            labels=["topic"],
        )  # fmt: skip
        downlink = CounterMetricFamily(
            "citywatch_bridge_downlink",
            "Receipts and work-order events published to MQTT after the broker acknowledged.",
        )
        dead = CounterMetricFamily(
            "citywatch_bridge_dead_letters", "Messages the bridge dead-lettered, by reason.",
            labels=["reason"],
        )  # fmt: skip
        rebuilds = CounterMetricFamily(
            "citywatch_bridge_producer_rebuilds", "Kafka producers replaced after failing sends."
        )
        restarts = CounterMetricFamily(
            "citywatch_bridge_downlink_restarts", "Restarts of the receipts relay after a failure."
        )
        connected = GaugeMetricFamily(
            "citywatch_bridge_mqtt_connected", "1 while the bridge's MQTT session is up."
        )
        for bridge in self.bridges:
            stats = bridge.stats
            received.add_metric([], stats.received)
            for topic, count in dict(stats.forwarded).items():
                forwarded.add_metric([topic], count)
            downlink.add_metric([], stats.receipts)
            dead.add_metric(["unroutable"], stats.unroutable)
            dead.add_metric(["too_large"], stats.too_large)
            rebuilds.add_metric([], stats.producer_rebuilds)
            restarts.add_metric([], stats.downlink_restarts)
            connected.add_metric([], 1 if bridge.connected else 0)
        yield from (received, forwarded, downlink, dead, rebuilds, restarts, connected)


BRIDGE_COLLECTOR = BridgeCollector()
BRIDGE_REGISTRY.register(BRIDGE_COLLECTOR)


def mqtt_probe(bridge: Bridge) -> str | None:
    return None if bridge.connected else "not connected to the MQTT broker (reconnecting)"


def kafka_probe(bridge: Bridge) -> str | None:
    return None if bridge.stats.kafka_up else "Kafka is not taking the bridge's messages"


def instrument_bridge(bridge: Bridge) -> None:
    """Expose the bridge's stats and readiness, and beat from its event loop (call it on
    the running loop: the heartbeat is a task of that loop)."""
    BRIDGE_COLLECTOR.bridges = [bridge]
    heartbeat = Heartbeat(SILENT_MAX_S)
    task = asyncio.get_running_loop().create_task(heartbeat.keep_beating(HEARTBEAT_S))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    BRIDGE_HEALTH.liveness["event_loop"] = heartbeat.probe
    BRIDGE_HEALTH.readiness["mqtt"] = lambda: mqtt_probe(bridge)
    BRIDGE_HEALTH.readiness["kafka"] = lambda: kafka_probe(bridge)


_tasks: set[asyncio.Task[None]] = set()
"""The heartbeat tasks (an event loop keeps only weak references to its tasks)."""
