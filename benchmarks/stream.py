"""Benchmark of the stream tier on the embedded stack, each stage against a bare baseline
measured in the same run (machines are noisy; the ratios are what we hold ourselves to).

Stages (issue 5 targets):

1. bridge (MQTT → Kafka, ack after Kafka acked) vs a bare paho QoS 1 subscriber receiving
   the same messages: ratio ≥ 0.5.
2. Faust app (Kafka → validation, dedup, work orders committed) vs a bare aiokafka consume →
   psycopg COPY loop over the same records: ratio ≥ 0.3. Both start from records already in
   Kafka (the app is paused with SIGSTOP while they are produced, timed from SIGCONT) and
   are timed to their last commit (the app's: the commit timestamp of the transaction that
   linked its last alert; the embedded stack tracks commit timestamps). Run
   twice: every alert a new incident (the worst case: each opens a work order), and
   episodes of ``--alerts-per-episode`` alerts (start, updates, end: one work order each).
   Two reference rows run a worker that does nothing (benchmarks/faust_floor.py, the app's
   transport and settings) on the same kind of records against the same baseline: as a
   Faust agent (the ceiling of any Faust agent on this machine) and through a batch lane
   as the app receives its records (stream/batch_lane.py: the app's ceiling).
3. end to end (MQTT in → work orders committed): ≥ 2,000 alerts/s sustained.
4. latency at a steady 500 alerts/s: p99 MQTT-publish → database ≤ 1 s.
5. telemetry: readings/s into the database (target ≥ 20,000/s), once with one reading a
   message and once with a sampled sensor's messages (``--readings-per-message``, default
   10: the latest reading plus nine earlier samples, ``telemetry_every_sample``).

    .venv/bin/python benchmarks/stream.py [--alerts 20000] [--telemetry 60000] [--latency-s 10]
                                          [--only WORDS]

Prints a table and writes benchmarks/results/stream.json. Starts (and stops) its own
embedded stack in a temporary directory, with the demo site's accounts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from paho.mqtt.enums import CallbackAPIVersion
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from citywatch.config import CitywatchConfig, load_config
from citywatch.config.secrets import resolve_secret
from citywatch.contracts import (
    Alert,
    Channel,
    DeviceRef,
    Location,
    Reading,
    Telemetry,
    encode,
)
from citywatch.contracts.topics import fleet_filter
from citywatch.stack.child import CliProcess
from citywatch.stack.endpoints import Endpoints, embedded_stack, resolve_endpoints
from citywatch.stream.migrate import migrate

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "demo-district.yaml"
RESULTS = Path(__file__).resolve().parent / "results" / "stream.json"
CAMERA = DeviceRef(site="demo", kind="camera", id="cam-renmin-101")
ALERT_HEADERS = [("mqtt_topic", CAMERA.address(Channel.ALERTS).topic.encode())]
SENSOR = DeviceRef(site="demo", kind="sensor", id="wl-underpass-01")
console = Console()


@dataclass
class Result:
    stage: str
    measured: str
    value: float
    unit: str
    baseline: float | None = None
    target: str = ""
    ok: bool | None = None
    notes: dict[str, object] = field(default_factory=dict)


# -- helpers -------------------------------------------------------------------------------------
def mqtt_client(endpoints: Endpoints, username: str, password: str, name: str) -> mqtt.Client:
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                         client_id=f"bench-{name}-{uuid.uuid4().hex[:6]}")  # fmt: skip
    client.username_pw_set(username, password)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(endpoints.mqtt_host, endpoints.mqtt_port)
    client.loop_start()
    return client


def gateway_client(config: CitywatchConfig, endpoints: Endpoints, gateway_id: str) -> mqtt.Client:
    gateway = next(g for g in config.devices.gateways if g.id == gateway_id)
    password = resolve_secret(gateway.credentials.password, endpoints.secrets_dir)
    return mqtt_client(endpoints, gateway.username, password, gateway_id)


def alerts(run: str, count: int, sent_ns: bool = False, per_episode: int = 1) -> list[Alert]:
    """Parked cars at random places within ~2 km (mostly one work order each).

    ``per_episode`` 1: every alert starts its own episode (the worst case: each one opens a
    work order). More: each episode is a start, updates and an end, as a camera sends them
    (``per_episode`` alerts, one work order)."""
    rng = random.Random(run)
    now = datetime.now(UTC) - timedelta(minutes=5)
    out = []
    for n in range(count):
        episode, seq = divmod(n, per_episode)
        if seq == 0:
            where = Location(
                lat=31.43 + rng.uniform(-0.02, 0.02), lon=119.48 + rng.uniform(-0.02, 0.02)
            )
        last = per_episode > 1 and seq == per_episode - 1
        out.append(
            Alert(
                id=f"b-{run}-{episode}.{seq}",
                episode_id=f"b-{run}-{episode}",
                seq=seq,
                device=CAMERA,
                kind="illegal_parking",
                rule="bench",
                phase="start" if seq == 0 else "end" if last else "update",
                event_time=now + timedelta(seconds=seq),
                location=where,
                confidence=0.8,
                attributes={"sent_ns": 0} if sent_ns else {},
            )
        )
    return out


def publish_all(client: mqtt.Client, topic: str, payloads: list[bytes], qos: int = 1) -> float:
    """Publish as fast as the client allows; return the seconds until the broker acked all."""
    start = time.perf_counter()
    infos = [client.publish(topic, p, qos=qos) for p in payloads]
    for info in infos:
        info.wait_for_publish(60)
    return time.perf_counter() - start


class KafkaCounter:
    """Counts, in a background thread, records of one topic whose value contains a marker.

    It reads the topic from the beginning rather than trusting end offsets: Tansu 0.6's
    ListOffsets can report the base offset of the last batch as the end (seen here).
    """

    def __init__(self, endpoints: Endpoints, topic: str, marker: bytes) -> None:
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._run(endpoints, topic, marker)), daemon=True
        )
        self._thread.start()

    async def _run(self, endpoints: Endpoints, topic: str, marker: bytes) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=endpoints.kafka_bootstrap, enable_auto_commit=False
        )
        await consumer.start()
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        try:
            while not self._stop.is_set():
                batch = await consumer.getmany(partition, timeout_ms=200, max_records=5000)
                self.count += sum(marker in record.value for record in batch.get(partition, []))
        finally:
            await consumer.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


POLL_S = 0.1
"""How often the benchmark looks at the database: the observer must not take the CPU of
the stack it measures (it shares the machine), so it polls on one connection, not faster."""
_CONNECTIONS: dict[str, psycopg.Connection] = {}


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout_s:
        if check():
            return time.perf_counter() - start
        time.sleep(POLL_S)
    raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}")


def scalar(endpoints: Endpoints, sql: str, *args: object) -> float:
    """The first column of the first row (0 for none), on the benchmark's own connection."""
    conn = _CONNECTIONS.get(endpoints.database_url)
    if conn is None or conn.closed:
        conn = psycopg.connect(endpoints.database_url, autocommit=True)
        _CONNECTIONS[endpoints.database_url] = conn
    row = conn.execute(sql, args).fetchone()  # type: ignore[arg-type]
    return float(row[0]) if row and row[0] is not None else 0


def commit_times(endpoints: Endpoints, ids: list[str], timeout_s: float = 600) -> dict[str, float]:
    """When each alert of ``ids`` was linked to its work order: the commit time (epoch
    seconds) of the transaction that linked it (the embedded stack tracks commit timestamps).
    Not the row's ``now()``: that is its transaction's start, a whole batch's work earlier."""
    sql = "SELECT count(*) FROM work_order_alerts WHERE alert_id = ANY(%s)"
    wait_until(
        lambda: scalar(endpoints, sql, ids) >= len(ids), timeout_s, f"{len(ids)} linked alerts"
    )
    conn = _CONNECTIONS[endpoints.database_url]
    rows = conn.execute(
        "SELECT alert_id, extract(epoch FROM pg_xact_commit_timestamp(xmin))"
        " FROM work_order_alerts WHERE alert_id = ANY(%s)",
        (ids,),
    ).fetchall()
    return {alert_id: float(at) for alert_id, at in rows}


def committed_by(endpoints: Endpoints, ids: list[str], started_wall: float) -> float:
    """Seconds from ``started_wall`` (``time.time()``) until the last of ``ids`` had been
    committed (:func:`commit_times`)."""
    return max(commit_times(endpoints, ids).values()) - started_wall


def start_cli(args: list[str], data_dir: Path) -> CliProcess:
    env = {"CITYWATCH_DATA_DIR": str(data_dir), "CITYWATCH_CONFIG": str(CONFIG)}
    return CliProcess(
        [*args, "--log-level", "WARNING"], data_dir / f"bench-{args[-1]}.log", env, cwd=REPO
    )


# -- stages --------------------------------------------------------------------------------------
def stage_bridge(
    config: CitywatchConfig, endpoints: Endpoints, data_dir: Path, count: int
) -> Result:
    """Bridge rate vs a bare QoS 1 subscriber on the same broker and messages."""
    payloads = [encode(a) for a in alerts("bridge-base", count)]
    topic = CAMERA.address(Channel.ALERTS).topic
    bridge_account = config.services.mqtt.bridge
    password = resolve_secret(bridge_account.password, endpoints.secrets_dir)
    received = threading.Semaphore(0)
    times: list[float] = []

    def on_message(client, userdata, message) -> None:  # type: ignore[no-untyped-def]
        times.append(time.perf_counter())

    bare = mqtt_client(endpoints, bridge_account.username, password, "bare-sub")
    bare.on_message = on_message
    bare.subscribe(fleet_filter(Channel.ALERTS), qos=1)
    time.sleep(0.5)
    publisher = gateway_client(config, endpoints, "gw-cam-renmin")
    start = time.perf_counter()
    publish_all(publisher, topic, payloads)
    wait_until(lambda: len(times) >= count, 120, "the bare subscriber")
    bare_rate = count / (times[-1] - start)
    bare.disconnect()
    del received

    counter = KafkaCounter(endpoints, "citywatch.alerts", b'"b-bridge-')
    bridge = start_cli(["stream", "bridge"], data_dir)
    try:
        wait_until(lambda: scalar(endpoints, "SELECT 1") == 1, 10, "db")
        time.sleep(3.0)  # connect and subscribe
        payloads = [encode(a) for a in alerts("bridge", count)]
        start = time.perf_counter()
        publish_all(publisher, topic, payloads)
        wait_until(lambda: counter.count >= count, 180, "Kafka")
        bridge_rate = count / (time.perf_counter() - start)
    finally:
        publisher.disconnect()
        counter.stop()
    STATE["bridge"] = bridge
    ratio = bridge_rate / bare_rate
    return Result(
        "1 bridge",
        "MQTT→Kafka msgs/s",
        bridge_rate,
        "msg/s",
        bare_rate,
        "≥ 0.5× bare paho QoS 1 subscriber",
        ratio >= 0.5,
        {"ratio": ratio},
    )


async def produce_records(
    endpoints: Endpoints, topic: str, values: list[bytes], headers: list[tuple[str, bytes]]
) -> tuple[int, int]:
    """Produce ``values`` under one key (one partition); its (partition, first offset)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=endpoints.kafka_bootstrap, linger_ms=20, acks="all"
    )
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value, key=b"bench", headers=headers) for value in values
        ]
        first = await futures[0]
        await asyncio.gather(*futures)
        return first.partition, first.offset
    finally:
        await producer.stop()


async def bare_copy_rate(
    endpoints: Endpoints, topic: str, partition: int, offset: int, count: int
) -> float:
    """The baseline: records/s of a bare aiokafka consume → psycopg COPY loop."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=endpoints.kafka_bootstrap, enable_auto_commit=False
    )
    await consumer.start()
    where = TopicPartition(topic, partition)
    consumer.assign([where])
    consumer.seek(where, offset)
    seen = 0
    begin = time.perf_counter()
    async with await psycopg.AsyncConnection.connect(endpoints.database_url) as conn:
        await conn.execute("CREATE TEMP TABLE bench_copy (id text, payload jsonb)")
        while seen < count:
            records = await consumer.getmany(where, timeout_ms=500, max_records=1000)
            rows = records.get(where, [])[: count - seen]
            async with conn.cursor().copy("COPY bench_copy (id, payload) FROM STDIN") as copy:
                for record in rows:
                    await copy.write_row((str(record.offset), record.value.decode()))
            await conn.commit()
            seen += len(rows)
    await consumer.stop()
    return count / (time.perf_counter() - begin)


def stage_app(
    config: CitywatchConfig, endpoints: Endpoints, data_dir: Path, count: int, per_episode: int
) -> Result:
    """Faust app (validate + store + dedup + work orders) vs a bare consume → COPY loop."""
    app = STATE.get("app")
    if app is None:
        app = STATE["app"] = start_cli(["stream", "app"], data_dir)
        # Let the app join and drain what the bridge stage produced (work orders too).
        wait_until(
            lambda: (
                scalar(endpoints, "SELECT count(*) FROM alerts")
                >= (count if "bridge" in STATE else 0)
            ),
            300,
            "the app to catch up",
        )
        # See a few alerts through, so the clock below starts on a worker that is running.
        warm = alerts("warm-up", 20)
        warm_values = [encode(a) for a in warm]
        asyncio.run(produce_records(endpoints, "citywatch.alerts", warm_values, ALERT_HEADERS))
        commit_times(endpoints, [a.id for a in warm], timeout_s=120)
    run = f"app{per_episode}"
    batch = alerts(run, count, per_episode=per_episode)
    values = [encode(a) for a in batch]
    with psycopg.connect(endpoints.database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM work_order_alerts WHERE alert_id LIKE %s", (f"b-{run}-%",))
    # Both sides start from records already in Kafka: the app is paused while they are
    # produced (the bare loop below never shares the CPU with a producer either).
    app.process.send_signal(signal.SIGSTOP)
    try:
        partition, offset = asyncio.run(
            produce_records(endpoints, "citywatch.alerts", values, ALERT_HEADERS)
        )
    finally:
        started = time.time()
        app.process.send_signal(signal.SIGCONT)
    app_rate = count / committed_by(endpoints, [a.id for a in batch], started)
    bare_rate = asyncio.run(bare_copy_rate(endpoints, "citywatch.alerts", partition, offset, count))
    ratio = app_rate / bare_rate
    return Result(
        "2 Faust app" + ("" if per_episode == 1 else f", episodes of {per_episode}"),
        "Kafka→work orders committed"
        + (", each alert a new incident" if per_episode == 1 else ", start/updates/end"),
        app_rate,
        "alert/s",
        bare_rate,
        "≥ 0.3× bare aiokafka→COPY",
        ratio >= 0.3,
        {"ratio": ratio},
    )


def stage_faust_floor(endpoints: Endpoints, data_dir: Path, count: int, mode: str) -> Result:
    """What receiving records costs in a Faust worker (same transport and settings as the
    app) that does nothing with them, vs the bare consume → COPY loop on the same records:
    ``mode`` "agent", a Faust agent's ``take_events``; "lane", the batch lane the app uses
    (stream/batch_lane.py). The app cannot be faster than its lane's row."""
    topic = f"bench.faust-floor-{mode}"
    values = [encode(a) for a in alerts("floor", count)]
    partition, offset = asyncio.run(produce_records(endpoints, topic, values, ALERT_HEADERS))
    env = {
        **os.environ,
        "FLOOR_BOOTSTRAP": endpoints.kafka_bootstrap,
        "FLOOR_TOPIC": topic,
        "FLOOR_COUNT": str(count),
        "FLOOR_DATA_DIR": str(data_dir / f"faust-floor-{mode}"),
        "FLOOR_MODE": mode,
    }
    done = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("faust_floor.py")), "worker", "-l", "warn"],
        env=env, capture_output=True, text=True, timeout=300, cwd=REPO,
    )  # fmt: skip
    # Faust's worker logs what the agent prints (to stderr, with a log prefix).
    rates = re.findall(r"records/s ([0-9.]+)", done.stdout + done.stderr)
    if not rates:
        raise RuntimeError(f"the Faust floor worker printed no rate: {done.stderr[-2000:]}")
    floor_rate = float(rates[-1])
    bare_rate = asyncio.run(bare_copy_rate(endpoints, topic, partition, offset, count))
    ratio = floor_rate / bare_rate
    return Result(
        f"2 Faust {mode} alone (reference)",
        f"Kafka→a {'Faust agent' if mode == 'agent' else 'batch lane'} that does nothing",
        floor_rate,
        "record/s",
        bare_rate,
        "the ceiling of the app" if mode == "lane" else "the ceiling of a Faust agent",
        None,
        {"ratio": ratio},
    )


def stage_end_to_end(config: CitywatchConfig, endpoints: Endpoints, count: int) -> Result:
    publisher = gateway_client(config, endpoints, "gw-cam-renmin")
    batch = alerts("e2e", count)
    payloads = [encode(a) for a in batch]
    started = time.time()
    publish_all(publisher, CAMERA.address(Channel.ALERTS).topic, payloads)
    elapsed = committed_by(endpoints, [a.id for a in batch], started)
    publisher.disconnect()
    rate = count / elapsed
    return Result(
        "3 end to end",
        "MQTT→work orders committed",
        rate,
        "alert/s",
        None,
        "≥ 2,000 alert/s",
        rate >= 2000,
        {"alerts": count, "seconds": elapsed},
    )


def stage_latency(
    config: CitywatchConfig, endpoints: Endpoints, seconds: float, rate: int = 500
) -> Result:
    publisher = gateway_client(config, endpoints, "gw-cam-renmin")
    topic = CAMERA.address(Channel.ALERTS).topic
    run = f"lat{uuid.uuid4().hex[:6]}"
    total = int(seconds * rate)
    batch = alerts(run, total)
    sent: dict[str, float] = {}
    begin = time.time()
    for n, alert in enumerate(batch):
        target = begin + n / rate
        delay = target - time.time()
        if delay > 0:
            time.sleep(delay)
        sent[alert.id] = time.time()
        publisher.publish(topic, encode(alert), qos=1)
    committed = commit_times(endpoints, list(sent), timeout_s=300)
    publisher.disconnect()
    latencies = sorted(committed[alert_id] - sent[alert_id] for alert_id in sent)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    return Result("4 latency", f"p99 MQTT→work order at {rate}/s", p99 * 1000, "ms", None, "≤ 1,000 ms", p99 <= 1.0,
                  {"p50_ms": statistics.median(latencies) * 1000, "max_ms": latencies[-1] * 1000, "alerts": len(latencies)})  # fmt: skip


def stage_telemetry(
    config: CitywatchConfig, endpoints: Endpoints, count: int, per_message: int
) -> Result:
    """``count`` readings of one sensor, ``per_message`` to a message (the latest plus
    ``per_message - 1`` earlier samples: a sensor with ``telemetry_every_sample``)."""
    publisher = gateway_client(config, endpoints, "gw-sensors-east")
    run = uuid.uuid4().hex[:6]
    now = datetime.now(UTC)
    messages = max(1, count // per_message)
    payloads = []
    for n in range(messages):
        last = now + timedelta(milliseconds=n * per_message + per_message - 1)
        earlier = tuple(
            Reading(event_time=last - timedelta(milliseconds=k), metrics={"depth_cm": 1.0})
            for k in range(per_message - 1, 0, -1)
        )
        payloads.append(
            encode(
                Telemetry(
                    id=f"t-{run}-{n}",
                    device=SENSOR,
                    event_time=last,
                    metrics={"depth_cm": 1.0, "battery_pct": 90.0},
                    earlier=earlier or None,
                )
            )
        )
    readings = messages * per_message
    first = now - timedelta(seconds=1)  # this run's rows: the sensor's, from its first reading
    stored = "SELECT count(*) FROM telemetry WHERE device_id = %s AND time >= %s"
    before = scalar(endpoints, stored, SENSOR.id, first)
    start = time.perf_counter()
    publish_all(publisher, SENSOR.address(Channel.TELEMETRY).topic, payloads, qos=1)
    wait_until(
        lambda: scalar(endpoints, stored, SENSOR.id, first) >= before + readings,
        600,
        "telemetry",
    )
    elapsed = time.perf_counter() - start
    publisher.disconnect()
    rate = readings / elapsed
    return Result(
        f"5 telemetry ×{per_message}",
        f"MQTT→telemetry rows, {per_message} reading(s)/message",
        rate,
        "reading/s",
        None,
        "≥ 20,000 reading/s",
        rate >= 20_000,
        {
            "readings": readings,
            "messages": messages,
            "seconds": elapsed,
            "start_s": start,
            "messages_per_s": messages / elapsed,
        },
    )


STATE: dict[str, CliProcess] = {}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--alerts",
        type=int,
        default=20000,
        help="alerts per throughput stage (several of the worker's 5,000-alert batches)",
    )
    parser.add_argument("--telemetry", type=int, default=60000)
    parser.add_argument(
        "--alerts-per-episode",
        type=int,
        default=5,
        help="alerts per episode (start, updates, end) in the second Faust-app run",
    )
    parser.add_argument(
        "--readings-per-message",
        type=int,
        default=10,
        help="readings a sampled sensor sends per message (the second telemetry run)",
    )
    parser.add_argument("--latency-s", type=float, default=10.0)
    parser.add_argument(
        "--only",
        default="",
        help="run only the stages whose name contains one of these comma-separated words"
        " (e.g. 'Faust,lane')",
    )
    args = parser.parse_args()
    config = load_config(CONFIG)
    data_dir = Path(tempfile.mkdtemp(prefix="citywatch-bench-"))
    data_dir.chmod(0o711)
    stack = embedded_stack(config, data_dir)
    results: list[Result] = []
    try:
        with console.status("starting the embedded stack…"):
            stack.up(timeout_s=90)
        endpoints = resolve_endpoints(config, data_dir)
        migrate(endpoints.database_url)
        stages = [
            (
                "bridge vs bare subscriber",
                lambda: stage_bridge(config, endpoints, data_dir, args.alerts),
            ),
            (
                "Faust app vs consume→COPY",
                lambda: stage_app(config, endpoints, data_dir, args.alerts, 1),
            ),
            (
                "Faust agent alone",
                lambda: stage_faust_floor(endpoints, data_dir, args.alerts, "agent"),
            ),
            (
                "batch lane alone",
                lambda: stage_faust_floor(endpoints, data_dir, args.alerts, "lane"),
            ),
            (
                "Faust app, lifecycle episodes",
                lambda: stage_app(
                    config, endpoints, data_dir, args.alerts, args.alerts_per_episode
                ),
            ),
            ("end to end", lambda: stage_end_to_end(config, endpoints, args.alerts)),
            ("latency at 500/s", lambda: stage_latency(config, endpoints, args.latency_s)),
            (
                "telemetry, one reading a message",
                lambda: stage_telemetry(config, endpoints, args.telemetry // 4, 1),
            ),
            (
                "telemetry, sampled",
                lambda: stage_telemetry(
                    config, endpoints, args.telemetry, args.readings_per_message
                ),
            ),
        ]
        wanted = [word.strip() for word in args.only.split(",") if word.strip()]
        if wanted:
            stages = [(n, run) for n, run in stages if any(w in n for w in wanted)]
        with Progress(console=console) as progress:
            task = progress.add_task("stream benchmark", total=len(stages))
            for name, run in stages:
                progress.update(task, description=name)
                results.append(run())
                progress.advance(task)
    finally:
        for conn in _CONNECTIONS.values():
            conn.close()
        for process in STATE.values():
            process.stop()
        stack.down()
        shutil.rmtree(data_dir, ignore_errors=True)
    table = Table(title="stream benchmark (embedded stack, this machine)")
    for column in ("stage", "measured", "value", "baseline", "ratio", "target", "ok"):
        table.add_column(column)
    for r in results:
        ratio = r.notes.get("ratio")
        table.add_row(r.stage, r.measured, f"{r.value:,.0f} {r.unit}", f"{r.baseline:,.0f}" if r.baseline else "–",
                      f"{ratio:.2f}" if isinstance(ratio, float) else "–", r.target, {True: "✓", False: "✗", None: "–"}[r.ok])  # fmt: skip
    console.print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {"cpus": os.cpu_count(), "results": [r.__dict__ for r in results]},
            indent=2,
            default=str,
        )
    )
    console.print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
