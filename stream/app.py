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

This module only wires the worker's parts to Faust; each is built and tested on its own:

- :class:`~citywatch.stream.intake.Intake`: every uplink lane's first step, validation;
  what fails goes to :class:`~citywatch.stream.rejections.Rejections` (dead letter with the
  reason, rejected receipt to the device).
- :class:`~citywatch.stream.alert_handler.AlertHandler`: alerts stored and folded into work
  orders, then receipted; :class:`~citywatch.stream.device_data.DeviceDataHandler`:
  telemetry, status and evidence stored.
- :class:`~citywatch.stream.worker_db.WorkerDatabase`: the pool, the processor's state and
  every database step, retried through outages (:mod:`citywatch.stream.db_retry`).
- :class:`~citywatch.stream.outbound.Outbound`: receipts and work-order events as records,
  sent and acknowledged by the broker.
- :mod:`citywatch.stream.timers`: the SLA tick, the relay of people's events, the counters,
  and the watch that starts the worker again when the Kafka broker lost its log
  (:class:`~citywatch.stream.timers.BrokerWatch`, :func:`reexec`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import faust
from aiokafka.errors import KafkaError
from faust.types import TP

from citywatch.config import CitywatchConfig
from citywatch.contracts import KafkaTopics, Status, Telemetry
from citywatch.contracts.messages import Evidence
from citywatch.stream import heap
from citywatch.stream.alert_handler import AlertHandler
from citywatch.stream.batch_lane import BatchLane, attach
from citywatch.stream.deadletter import DeadLetter
from citywatch.stream.dedup_claim import PlaceClaims
from citywatch.stream.device_data import DeviceDataHandler, upsert_statuses
from citywatch.stream.faust_transport import StreamApp, kafka_producer, worker_options
from citywatch.stream.intake import BatchHandler, Intake
from citywatch.stream.kafka_admin import BrokerProbe
from citywatch.stream.kafka_batches import Record, send_all
from citywatch.stream.metrics import count_sent, instrument_worker
from citywatch.stream.outbound import Outbound, Send
from citywatch.stream.processor import AlertProcessor
from citywatch.stream.readiness import DatabaseHealth
from citywatch.stream.rejections import Rejections
from citywatch.stream.settings import StreamSettings
from citywatch.stream.sink import insert_evidence, insert_telemetry, open_pool
from citywatch.stream.timers import BrokerWatch, CounterReport, RelayTimer, SlaTimer
from citywatch.stream.validate import Registry
from citywatch.stream.worker_db import WorkerDatabase

BATCH_MAX = 5000
BATCH_WITHIN_S = 0.1
BATCH_BUFFER = 20000
TICK_S = 2.0
RELAY_S = 1.0
REPORT_S = 30.0
BROKER_CHECK_S = 2.0
"""How often the worker asks the Kafka broker whether it still holds the worker's log."""

SEND_RETRY_FIRST_S = 0.2
SEND_RETRY_MAX_S = 5.0
"""Backoff of a receipt or event send the broker refused (see :func:`kafka_sender`)."""

log = logging.getLogger(__name__)


def reexec(reason: str) -> None:
    """Replace this worker process by a fresh start of the same command line (the broker
    lost its log: see :class:`~citywatch.stream.timers.BrokerWatch`). Nothing is flushed
    or committed first: what this worker had not acknowledged is read again."""
    log.warning("restarting the stream worker: %s", reason)
    logging.shutdown()
    os.execv(sys.executable, sys.orig_argv)


def build_app(
    config: CitywatchConfig,
    settings: StreamSettings,
    on_lost_log: Callable[[str], None] = reexec,
) -> faust.App:
    """A Faust app wired to the topics, the registry and the store of one site;
    ``on_lost_log`` is called when the Kafka broker no longer holds the worker's log."""
    topics = KafkaTopics(settings.topic_prefix)
    counters: Counter[str] = Counter()
    heap.tune()
    app = StreamApp(
        f"{settings.topic_prefix}-stream",
        on_lost_log=on_lost_log,
        idempotent_producer=settings.kafka_idempotent,
        broker=[f"kafka://{server}" for server in settings.kafka_servers],
        broker_credentials=settings.kafka_security.faust_credentials(),
        **worker_options(
            partitions=settings.partitions,
            replication_factor=settings.replication_factor,
            producer_acks=settings.producer_acks,
            session_timeout_s=settings.session_timeout_s,
            data_dir=settings.data_dir / "faust",
        ),
    )
    processor = AlertProcessor(config)
    db = WorkerDatabase(
        open_pool(settings.database_url), processor,
        retry_max_s=config.services.database.retry_max.total_seconds(),
        health=DatabaseHealth(health_path(settings.data_dir)),
        claims=PlaceClaims(processor, settings.geo_resolution) if settings.partitions > 1 else None,
    )  # fmt: skip
    outbound = Outbound(topics, kafka_sender(app))
    reject = Rejections(dead_letter_sender(raw_topic(app, topics.dead_letters)), outbound, counters)
    intake = partial(Intake, Registry.from_config(config), reject)
    uplinks: dict[str, BatchHandler] = {
        topics.alerts: AlertHandler(
            store=db.store_alerts, district_of=processor.district_of, outbound=outbound,
            reject=reject, invalidate=db.readiness.invalidate, counters=counters,
        ),
        topics.telemetry: DeviceDataHandler(
            Telemetry, "telemetry", partial(db.store_batch, "telemetry", insert_telemetry),
            counters,
        ),
        topics.status: DeviceDataHandler(
            Status, "status", partial(db.store_batch, "status", upsert_statuses), counters
        ),
        topics.evidence: DeviceDataHandler(
            Evidence, "evidence", partial(db.store_batch, "evidence", insert_evidence), counters
        ),
    }  # fmt: skip
    for name, handler in uplinks.items():
        lane = BatchLane(
            app, raw_topic(app, name), intake(handler), reject,
            max_records=BATCH_MAX, within_s=BATCH_WITHIN_S, buffer=BATCH_BUFFER,
        )  # fmt: skip
        attach(app, lane)

    def reload_after_rebalance(_: faust.App, assigned: set[TP], **__: Any) -> None:
        db.readiness.partitions_assigned(assigned)  # arriving partitions: read the state again

    app.on_partitions_assigned.connect(reload_after_rebalance)  # type: ignore[arg-type]
    app.timer(TICK_S, name="sla_and_quiet_timer")(SlaTimer(db.tick, outbound, counters).run)
    app.timer(RELAY_S, name="relay_peoples_events")(RelayTimer(db.relay, outbound, counters).run)
    app.timer(REPORT_S, name="report_counters")(CounterReport(counters).run)
    probe = BrokerProbe(settings, list(topics.all()))
    watch = BrokerWatch(probe.lost_log, on_lost_log)
    app.timer(BROKER_CHECK_S, name="watch_broker_log")(watch.run)
    instrument_worker(app, db, counters)
    return app


def health_path(data_dir: Path, pid: int | None = None) -> Path:
    """Where the worker with ``pid`` (this one by default) reports its database health."""
    return data_dir / "health" / f"stream-app-{pid or os.getpid()}.json"


def raw_topic(app: faust.App, name: str) -> faust.TopicT:
    """A topic of ``app`` whose keys and values are bytes as the broker holds them."""
    return app.topic(
        name, value_type=bytes, key_type=bytes, value_serializer="raw", key_serializer="raw"
    )


def kafka_sender(app: faust.App, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> Send:
    """Sends records through ``app``'s producer as one record batch per partition and
    waits for the broker's acks (the producer is looked up at each send: it starts with the
    worker).

    A send the broker refuses is sent again, with backoff, until it is acknowledged: the
    receipts and events of a batch are sent after its transaction committed, so a failure
    here is the broker's (restarting, a topic just recreated: Tansu answers UnknownError
    then), never the records'; raising would dead-letter alerts that are stored. Receipts
    and events have stable ids, so a resend of what was acked already changes nothing.
    """

    async def send(records: Sequence[Record]) -> None:
        delay = SEND_RETRY_FIRST_S
        while True:
            try:
                await send_all(kafka_producer(app), records)
                count_sent(records)
                return
            except KafkaError as exc:
                log.warning(
                    "Kafka refused %d receipts and events (%r); sending them again in %.1fs",
                    len(records), exc, delay,
                )  # fmt: skip
                await sleep(delay)
                delay = min(delay * 2, SEND_RETRY_MAX_S)

    return send


def dead_letter_sender(topic: faust.TopicT) -> Callable[[DeadLetter], Awaitable[None]]:
    """Sends one dead letter to ``topic`` with Kafka Connect's error headers."""

    async def send(record: DeadLetter) -> None:
        await topic.send(key=record.key, value=record.value, headers=record.headers())

    return send
