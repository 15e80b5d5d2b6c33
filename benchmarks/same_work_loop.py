"""The same-work baseline of ``benchmarks/stream.py`` (issue 22): the stream app's work on
alerts, in a hand-written aiokafka loop instead of Faust.

Issue 5 measured the Faust app against a consume → COPY loop that does none of its work;
no rewrite of the app could reach that ratio. This loop does **the same work** with the
same code: each batch goes through the app's own :class:`Intake` (validation, rejections),
:class:`AlertHandler` (rows, the transaction with dedup and work orders, receipts and
work-order events after the commit) over a :class:`WorkerDatabase` on the same tables, and
its receipts and events are produced with the same batch sender and acknowledged before the
batch's offsets are committed; the next batch is validated while one is handled, as the app's
lane does. What it leaves out is what Faust adds around that work: the
conductor, the batch lane's queue and flow control, offset tracking with gaps, the timers,
rebalancing across workers. So the app's rate over this loop's is what Faust costs.

It reads one partition from a given offset (assigned, not balanced: the benchmark produced
the records just before), with the app's batch size and linger, and exits after ``SAME_COUNT``
alerts were committed, printing ``alerts/s N`` timed from its first fetch::

    SAME_BOOTSTRAP=… SAME_TOPIC=citywatch.alerts SAME_PARTITION=0 SAME_OFFSET=… \\
    SAME_COUNT=20000 SAME_DATABASE_URL=… SAME_CONFIG=configs/demo-district.yaml \\
    SAME_DATA_DIR=… .venv/bin/python -m benchmarks.same_work_loop
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from benchmarks.harness import REPO, extract_at
from citywatch.config import load_config
from citywatch.contracts import KafkaTopics
from citywatch.stream import heap
from citywatch.stream.alert_handler import AlertHandler
from citywatch.stream.app import BATCH_MAX, BATCH_WITHIN_S
from citywatch.stream.deadletter import DeadLetter
from citywatch.stream.intake import Intake, Validated
from citywatch.stream.kafka_batches import Record, send_all
from citywatch.stream.outbound import Outbound
from citywatch.stream.processor import AlertProcessor, Outcome
from citywatch.stream.readiness import DatabaseHealth
from citywatch.stream.rejections import Rejections
from citywatch.stream.sink import AlertRow, open_pool
from citywatch.stream.validate import Registry
from citywatch.stream.worker_db import WorkerDatabase


@dataclass(frozen=True)
class Fetched:
    """A consumed record with the fields the app's handlers read (Faust's ``Message`` has
    them too; Kafka timestamps are in seconds there, in milliseconds in aiokafka)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    timestamp: float


def fetched(record: object) -> Fetched:
    return Fetched(
        record.topic, record.partition, record.offset, record.key, record.value,  # type: ignore[attr-defined]
        tuple(record.headers or ()), record.timestamp / 1000,  # type: ignore[attr-defined]
    )  # fmt: skip


async def run(env: dict[str, str]) -> float:
    config = load_config(Path(env["SAME_CONFIG"]))
    heap.tune()  # as the app's worker does
    count = int(env["SAME_COUNT"])
    topics = KafkaTopics(env.get("SAME_PREFIX", "citywatch"))
    producer = AIOKafkaProducer(bootstrap_servers=env["SAME_BOOTSTRAP"], acks="all")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=env["SAME_BOOTSTRAP"], enable_auto_commit=False,
        group_id="citywatch-bench-same-work",
        fetch_max_bytes=64 * 1024 * 1024, max_partition_fetch_bytes=16 * 1024 * 1024,
    )  # fmt: skip
    await producer.start()
    await consumer.start()
    counters: Counter[str] = Counter()
    spent: defaultdict[str, float] = defaultdict(float)  # wall seconds a phase (SAME_PHASES)

    async def send(records: list[Record]) -> None:
        with timed(spent, "send and acks"):
            await send_all(producer, records)

    async def store(rows: Sequence[AlertRow]) -> Outcome:
        with timed(spent, "store step"):
            return await db.store_alerts(rows)

    async def dead_letter(letter: DeadLetter) -> None:
        await producer.send_and_wait(
            topics.dead_letters, key=letter.key, value=letter.value,
            headers=list(letter.headers().items()),
        )  # fmt: skip

    processor = AlertProcessor(config)
    data_dir = Path(env["SAME_DATA_DIR"])
    db = WorkerDatabase(
        open_pool(env["SAME_DATABASE_URL"]), processor,
        retry_max_s=config.services.database.retry_max.total_seconds(),
        health=DatabaseHealth(data_dir / "same-work-health.json"),
    )  # fmt: skip
    outbound = Outbound(topics, send)
    reject = Rejections(dead_letter, outbound, counters)
    handler = AlertHandler(
        store=store, district_of=processor.district_of, outbound=outbound,
        reject=reject, invalidate=db.readiness.invalidate, counters=counters,
    )  # fmt: skip
    intake = Intake(Registry.from_config(config), reject, handler)
    tp = TopicPartition(env["SAME_TOPIC"], int(env["SAME_PARTITION"]))
    consumer.assign([tp])
    consumer.seek(tp, int(env["SAME_OFFSET"]))
    # The app under test was warmed up (pool open, state read) before its clock started.
    await db.readiness.ensure()

    async def handle(valid: list[Validated], last_offset: int) -> None:
        """A batch's second step, then its offsets (as the app's lane does)."""
        with timed(spent, "handling"):
            await intake.handle_prepared(valid)
        with timed(spent, "offset commit"):
            await consumer.commit({tp: last_offset + 1})

    seen, started, cpu = 0, time.perf_counter(), time.process_time()
    in_flight: asyncio.Task[None] | None = None
    try:
        while seen < count:
            with timed(spent, "fetch"):
                polled = await consumer.getmany(
                    tp, timeout_ms=int(BATCH_WITHIN_S * 1000), max_records=BATCH_MAX
                )
            batch = [fetched(r) for r in polled.get(tp, [])]
            if not batch:
                continue
            # Validated while the batch before is handled, as the app's lane does.
            with timed(spent, "validation"):
                valid = await intake.prepare(batch)  # type: ignore[arg-type]
            if in_flight is not None:
                await in_flight
            in_flight = asyncio.create_task(handle(valid, batch[-1].offset))
            seen += len(batch)
        if in_flight is not None:
            await in_flight
        spent["wall"], spent["cpu"] = time.perf_counter() - started, time.process_time() - cpu
        if env.get("SAME_PHASES"):
            with open(env["SAME_PHASES"], "a", encoding="utf-8") as out:
                phases = " ".join(f"{k}={v:.2f}s" for k, v in spent.items())
                out.write(f"{env['SAME_TOPIC']} {count} alerts: {phases}\n")
        return count / spent["wall"]
    finally:
        await consumer.stop()
        await producer.stop()
        await db.pool.close()


@contextmanager
def timed(spent: defaultdict[str, float], phase: str) -> Iterator[None]:
    """Add the wall time of the enclosed step to ``spent[phase]``: where the loop's time
    goes, with ``SAME_PHASES=FILE`` (the store step includes its waits on the database;
    handling, the store step and the sends; validation overlaps the handling before it)."""
    began = time.perf_counter()
    try:
        yield
    finally:
        spent[phase] += time.perf_counter() - began


def command_at(revision: str | None, into: Path) -> tuple[list[str], dict[str, str], Path]:
    """The command line that runs this loop, the environment it adds and the folder it
    runs in, as the code was at git ``revision`` (None: as it is now, from the repository):
    the same work before a change, measured in the same run as after it (``SAME_BEFORE=rev``
    in ``benchmarks/stream.py``). The past packages are extracted under ``into`` and laid
    out as installed (``stream/`` as ``citywatch/stream``); run there, they come before the
    installed ones on the path."""
    command = [sys.executable, "-m", "benchmarks.same_work_loop"]
    if revision is None:
        return command, {}, REPO
    extract_at(revision, into, "citywatch", "stream", "benchmarks")
    (into / "stream").rename(into / "citywatch" / "stream")
    return command, {"PYTHONPATH": str(into)}, into


def main() -> None:
    """Run the loop; with ``SAME_PROFILE=FILE`` under cProfile, its stats written there."""
    env = dict(os.environ)
    if env.get("SAME_PROFILE"):
        profile = cProfile.Profile()
        rate = profile.runcall(asyncio.run, run(env))
        profile.dump_stats(env["SAME_PROFILE"])
    else:
        rate = asyncio.run(run(env))
    print(f"alerts/s {rate:.1f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
