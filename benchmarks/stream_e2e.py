"""The bridge, end to end and telemetry on the embedded stack (issue 22), each figure beside
a baseline measured in the same run (the machine is shared and noisy: ratios hold).

Stages, in order (the app is started after the bridge-alone rows, so those have the CPUs
the app would take):

1. bare broker: a gateway's QoS 1 messages to a bare paho subscriber (auto-acked), per
   payload shape: alerts, telemetry of one reading, telemetry of ``--readings-per-message``.
   The ceiling of anything behind Mosquitto on this machine.
2. bridge alone (MQTT → Kafka acked → MQTT acked), per payload shape, against row 1.
   With ``--before REV`` the bridge of git revision REV runs too, just before, on the same
   payloads (the "before" of the table).
3. end to end (MQTT → work orders committed), every alert a new incident, against the
   app's own rate from Kafka in the same run (the app paused while the alerts are produced,
   timed from its resumption to its last commit): the end-to-end rate cannot pass it.
4. latency: p99 MQTT publish → work order committed at a steady 500 alerts/s.
5. telemetry end to end (MQTT → telemetry rows committed): messages of one reading, and
   of ``--readings-per-message``, against the bridge alone on the same payloads (row 2).

Rows 3–5 run with ``--before`` twice, the old bridge first, the same app behind both.

    .venv/bin/python -m benchmarks.stream_e2e [--alerts 20000] [--telemetry-messages 20000]
        [--readings-per-message 10] [--latency-s 10] [--before REV] [--only WORDS]

``BRIDGE_PYSPY=DIR`` records each bridge with py-spy (raw collapsed stacks, one file per
bridge and stage) for flame graphs. Writes benchmarks/results/stream_e2e.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from benchmarks import stream_clients as clients
from benchmarks.dedup_replay import tree_at
from benchmarks.harness import (
    DEMO_CONFIG,
    REPO,
    Figure,
    console,
    counted_progress,
    cpu_seconds,
    figures_table,
    parser,
    percentile,
    reproduce,
    run_facts,
    save,
    say,
)
from benchmarks.private_stack import private_stack
from citywatch.config import CitywatchConfig, load_config
from citywatch.config.secrets import resolve_secret
from citywatch.contracts import Channel, Reading, Telemetry, encode
from citywatch.contracts.topics import fleet_filter
from citywatch.stack.child import CliProcess
from citywatch.stack.endpoints import Endpoints

SHAPES = ("alerts", "telemetry ×1", "telemetry ×N")
STORED = "SELECT count(*) FROM telemetry WHERE time >= %s AND id LIKE %s"
"""A run's telemetry rows (their ids start with the run's), from its first reading on."""
LAST = "SELECT count(*) FROM telemetry WHERE time >= %s AND id = %s"
"""The latest reading of a run's last message: stored last (one sensor, one partition, its
batches stored in order), so the stage waits for it and then counts the rest once."""


@dataclass
class Run:
    """One benchmark run: the stack, the trees whose bridges run, what is running now."""

    config: CitywatchConfig
    endpoints: Endpoints
    data_dir: Path
    trees: dict[str, Path | None]
    """Bridge name ("before", "now") → the tree it runs from (None: this checkout)."""
    per_message: int
    bridges: int = 1
    """Bridges on the shared subscription (``--bridge-id`` 1..n)."""
    running: dict[str, CliProcess] = field(default_factory=dict)
    bridge_rates: dict[tuple[str, str], float] = field(default_factory=dict)
    bare_rates: dict[str, float] = field(default_factory=dict)
    """Payload shape → messages/s of the bare broker (row 1), measured before any bridge
    session exists (Mosquitto would queue them for it)."""
    """(bridge, payload shape) → messages/s of the bridge alone (row 2)."""


# -- payloads ------------------------------------------------------------------------------------
def alert_payloads(run: str, count: int) -> tuple[str, list[bytes], bytes]:
    """(MQTT topic, payloads, a marker found in each record's value) of ``count`` alerts."""
    payloads = [encode(a) for a in clients.alerts(run, count)]
    return clients.CAMERA.address(Channel.ALERTS).topic, payloads, f'"b-{run}-'.encode()


def telemetry_payloads(run: str, messages: int, per_message: int) -> tuple[str, list[bytes], bytes]:
    """``messages`` telemetry messages of one sensor, ``per_message`` readings each (the
    latest plus earlier samples, a sensor with ``telemetry_every_sample``), from now on."""
    now = datetime.now(UTC)
    payloads = []
    for n in range(messages):
        last = now + timedelta(milliseconds=n * per_message + per_message - 1)
        earlier = tuple(
            Reading(event_time=last - timedelta(milliseconds=k), metrics={"depth_cm": 1.0})
            for k in range(per_message - 1, 0, -1)
        )
        telemetry = Telemetry(
            id=f"t-{run}-{n}", device=clients.SENSOR, event_time=last,
            metrics={"depth_cm": 1.0, "battery_pct": 90.0}, earlier=earlier or None,
        )  # fmt: skip
        payloads.append(encode(telemetry))
    return clients.SENSOR.address(Channel.TELEMETRY).topic, payloads, f'"t-{run}-'.encode()


def shaped(shape: str, run: str, count: int, per_message: int) -> tuple[str, list[bytes], bytes]:
    if shape == "alerts":
        return alert_payloads(run, count)
    return telemetry_payloads(run, count, 1 if shape == "telemetry ×1" else per_message)


def kafka_topic(shape: str) -> str:
    return "citywatch.alerts" if shape == "alerts" else "citywatch.telemetry"


# -- processes -----------------------------------------------------------------------------------
def start(run: Run, args: list[str], name: str, tree: Path | None = None) -> CliProcess:
    """A stream process of this checkout, or of ``tree`` (an older revision's code)."""
    env = {"CITYWATCH_DATA_DIR": str(run.data_dir), "CITYWATCH_CONFIG": str(DEMO_CONFIG)}
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    log = run.data_dir / f"bench-{name}.log"
    process = CliProcess([*args, "--log-level", "WARNING"], log, env, cwd=tree or REPO)
    run.running[name] = process
    return process


def stop(run: Run, name: str) -> None:
    process = run.running.pop(name, None)
    if process is not None:
        process.stop()


@contextmanager
def bridge_of(run: Run, name: str, stage: str) -> Iterator[CliProcess]:
    """The bridges of ``name`` running (proven to forward: a probe reached Kafka) for the
    ``with`` block; stopped after, so one tree's bridges at a time hold the share group."""
    bridge = start(run, ["stream", "bridge"], f"bridge-{name}", run.trees[name])
    for n in range(2, run.bridges + 1):
        start(run, ["stream", "bridge", "--bridge-id", str(n)], f"bridge-{name}-{n}", run.trees[name])  # fmt: skip
    try:
        probe, payloads, marker = alert_payloads(f"probe-{uuid.uuid4().hex[:6]}", 120)
        counter = clients.KafkaCounter(run.endpoints, "citywatch.alerts", marker)
        publisher = clients.gateway_client(run.config, run.endpoints, "gw-cam-renmin")
        try:  # one probe every half second (those before its subscription are not kept)
            for payload in payloads:
                publisher.publish(probe, payload, qos=1)
                if counter.count or bridge.process.poll() is not None:
                    break
                time.sleep(0.5)
            if not counter.count:
                raise RuntimeError(f"bridge {name} forwarded nothing: {bridge.output()[-2000:]}")
        finally:
            publisher.disconnect()
            counter.stop()
        with profiled(bridge, f"{name}-{stage}"):
            yield bridge
    finally:
        for process in [p for p in run.running if p.startswith(f"bridge-{name}")]:
            stop(run, process)


def bridges_cpu(run: Run, name: str) -> float:
    """CPU seconds used so far by the running bridges of ``name``."""
    return sum(cpu_seconds(p.process.pid) for n, p in run.running.items() if n.startswith(f"bridge-{name}"))  # fmt: skip


@contextmanager
def profiled(process: CliProcess, label: str) -> Iterator[None]:
    """py-spy on ``process`` when ``BRIDGE_PYSPY`` names a directory."""
    folder = os.environ.get("BRIDGE_PYSPY")
    if not folder:
        yield
        return
    spy = Path(sys.executable).with_name("py-spy")
    out = Path(folder) / f"{label.replace(' ', '_').replace('×', 'x')}.txt"
    recorder = subprocess.Popen(
        [str(spy), "record", "--pid", str(process.process.pid), "-r", "200", "-f", "raw",
         "-o", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)
        recorder.wait(30)


# -- stages --------------------------------------------------------------------------------------
def bare_broker_rate(run: Run, topic: str, payloads: list[bytes]) -> float:
    """Messages/s from a gateway to a bare QoS 1 subscriber on the bridge's account."""
    account = run.config.services.mqtt.bridge
    password = resolve_secret(account.password, run.endpoints.secrets_dir)
    times: list[float] = []
    bare = clients.mqtt_client(run.endpoints, account.username, password, "bare-sub")
    bare.on_message = lambda client, userdata, message: times.append(time.perf_counter())
    bare.subscribe(fleet_filter(Channel.ALERTS), qos=1)
    bare.subscribe(fleet_filter(Channel.TELEMETRY), qos=1)
    time.sleep(0.5)
    try:
        start_at = time.perf_counter()
        publish(run, topic, payloads)
        clients.wait_until(lambda: len(times) >= len(payloads), 120, "the bare subscriber")
        return len(payloads) / (times[-1] - start_at)
    finally:
        bare.disconnect()


def gateway_of(topic: str) -> str:
    return "gw-cam-renmin" if "/camera/" in topic else "gw-sensors-east"


def publish(run: Run, topic: str, payloads: list[bytes]) -> None:
    """Publish at QoS 1 with the device's gateway account, as fast as the broker takes them
    (a lean client: see :func:`~benchmarks.stream_clients.raw_publish`)."""
    gateway = next(g for g in run.config.devices.gateways if g.id == gateway_of(topic))
    password = resolve_secret(gateway.credentials.password, run.endpoints.secrets_dir)
    clients.raw_publish(run.endpoints, gateway.username, password, topic, payloads)


def counted(counter: clients.KafkaCounter, count: int) -> bool:
    return counter.count >= count


def row_stored(run: Run, since: datetime, row_id: str) -> bool:
    return clients.scalar(run.endpoints, LAST, since, row_id) >= 1


def rows_stored(run: Run, since: datetime, tag: str, readings: int) -> bool:
    time.sleep(0.4)  # (a count of 200,000 rows: not ten times a second)
    return clients.scalar(run.endpoints, STORED, since, f"t-{tag}-%") >= readings


def stage_bridge(run: Run, shape: str, count: int) -> list[Figure]:
    """The bridge alone (each tree's) against the bare broker, on ``shape`` payloads."""
    for each in SHAPES if not run.bare_rates else ():
        topic, payloads, _ = shaped(each, f"bare{uuid.uuid4().hex[:4]}", count, run.per_message)
        run.bare_rates[each] = bare_broker_rate(run, topic, payloads)
    bare = run.bare_rates[shape]
    figures = []
    for name in run.trees:
        topic, payloads, marker = shaped(shape, f"br{uuid.uuid4().hex[:6]}", count, run.per_message)  # fmt: skip
        counter = None
        try:
            with bridge_of(run, name, f"bridge-{shape}") as bridge:
                counter = clients.KafkaCounter(run.endpoints, kafka_topic(shape), marker)
                time.sleep(1.0)  # its consumer started (it reads the topic from the start)
                cpu = bridges_cpu(run, name)
                start_at = time.perf_counter()
                publish(run, topic, payloads)
                try:
                    clients.wait_until(partial(counted, counter, count), 300, "Kafka")
                except TimeoutError as exc:
                    raise TimeoutError(
                        f"{counter.count} of {count} in Kafka; bridge {name}:"
                        f" {bridge.output()[-3000:]}"
                    ) from exc
                rate = count / (time.perf_counter() - start_at)
                cpu = bridges_cpu(run, name) - cpu
        finally:
            if counter is not None:
                counter.stop()
        run.bridge_rates[name, shape] = rate
        figures.append(Figure(
            f"2 bridge alone, {shape} ({name})",
            f"MQTT→Kafka acked→MQTT acked (bridge CPU {cpu / count * 1e6:.0f} µs/msg)", rate, "msg/s",
            bare, "baseline: bare broker → QoS 1 subscriber", None,
            {"bridge_cpu_us_per_msg": cpu / count * 1e6},
        ))  # fmt: skip
    return figures


def app_rate_from_kafka(run: Run, count: int) -> float:
    """Alerts/s of the app alone: paused while ``count`` alerts are produced to Kafka, timed
    from its resumption to the commit that linked the last one."""
    app = run.running["app"]
    batch = clients.alerts(f"kafka{uuid.uuid4().hex[:6]}", count)
    app.process.send_signal(signal.SIGSTOP)
    try:
        asyncio.run(clients.produce_records(
            run.endpoints, "citywatch.alerts", [encode(a) for a in batch], clients.ALERT_HEADERS
        ))  # fmt: skip
    finally:
        started = time.time()
        app.process.send_signal(signal.SIGCONT)
    return count / clients.committed_by(run.endpoints, [a.id for a in batch], started)


def ensure_app(run: Run) -> None:
    """The stream app running and caught up (a few alerts straight to Kafka seen through)."""
    if "app" in run.running:
        return
    start(run, ["stream", "app"], "app")
    warm = clients.alerts(f"warm{uuid.uuid4().hex[:4]}", 20)
    asyncio.run(clients.produce_records(
        run.endpoints, "citywatch.alerts", [encode(a) for a in warm], clients.ALERT_HEADERS
    ))  # fmt: skip
    clients.commit_times(run.endpoints, [a.id for a in warm], timeout_s=300)


def stage_end_to_end(run: Run, count: int) -> list[Figure]:
    """MQTT → work orders committed against the app's own rate from Kafka (same run)."""
    ensure_app(run)
    figures = []
    for name in run.trees:
        with bridge_of(run, name, "end-to-end"):
            batch = clients.alerts(f"e2e{uuid.uuid4().hex[:6]}", count)
            values = [encode(a) for a in batch]
            started = time.time()
            publish(run, clients.CAMERA.address(Channel.ALERTS).topic, values)
            elapsed = clients.committed_by(run.endpoints, [a.id for a in batch], started)
        figures.append(Figure(
            f"3 end to end ({name})", "MQTT→work orders committed, each alert a new incident",
            count / elapsed, "alert/s", None, "≥ 5,000 alert/s (baseline: the app from Kafka)",
            count / elapsed >= 5000, {"alerts": count, "seconds": elapsed},
        ))  # fmt: skip
    # After them: by then the app has stored what the bridge-alone rows left in Kafka.
    app_rate = app_rate_from_kafka(run, count)
    for figure in figures:
        figure.baseline = app_rate
    return figures


def stage_latency(run: Run, seconds: float, rate: int = 500) -> list[Figure]:
    """p99 from an alert's publish to the commit of its work order, at a steady ``rate``."""
    ensure_app(run)
    figures = []
    for name in run.trees:
        with bridge_of(run, name, "latency"):
            latencies = paced_latencies(run, seconds, rate)
        p99 = percentile(latencies, 99)
        figures.append(Figure(
            f"4 latency ({name})", f"p99 MQTT→work order at {rate}/s", p99 * 1000, "ms", None,
            "≤ 300 ms", p99 <= 0.3,
            {"p50_ms": statistics.median(latencies) * 1000, "max_ms": latencies[-1] * 1000,
             "alerts": len(latencies)},
        ))  # fmt: skip
    return figures


def paced_latencies(run: Run, seconds: float, rate: int) -> list[float]:
    """Sorted seconds from publish to commit of ``seconds × rate`` alerts sent at ``rate``."""
    publisher = clients.gateway_client(run.config, run.endpoints, "gw-cam-renmin")
    topic = clients.CAMERA.address(Channel.ALERTS).topic
    batch = clients.alerts(f"lat{uuid.uuid4().hex[:6]}", int(seconds * rate))
    sent: dict[str, float] = {}
    begin = time.time()
    for n, alert in enumerate(batch):
        delay = begin + n / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        sent[alert.id] = time.time()
        publisher.publish(topic, encode(alert), qos=1)
    committed = clients.commit_times(run.endpoints, list(sent), timeout_s=300)
    publisher.disconnect()
    return sorted(committed[alert_id] - sent[alert_id] for alert_id in sent)


def stage_telemetry(run: Run, shape: str, count: int) -> list[Figure]:
    """MQTT → telemetry rows committed, against the bridge alone on the same payloads."""
    ensure_app(run)
    per_message = 1 if shape == "telemetry ×1" else run.per_message
    figures = []
    for name in run.trees:
        with bridge_of(run, name, shape):
            tag = uuid.uuid4().hex[:6]
            first = datetime.now(UTC) - timedelta(seconds=1)  # before its first reading's time
            topic, payloads, _ = telemetry_payloads(tag, count, per_message)
            readings = count * per_message
            start_at = time.perf_counter()
            publish(run, topic, payloads)
            last = f"t-{tag}-{count - 1}"
            clients.wait_until(partial(row_stored, run, first, last), 600, "telemetry")
            early = clients.scalar(run.endpoints, STORED, first, f"t-{tag}-%")
            if early < readings:  # not all in order: wait for the rest (counting is costly)
                clients.wait_until(partial(rows_stored, run, first, tag, readings), 600, "rest")
            elapsed = time.perf_counter() - start_at
        alone = run.bridge_rates.get((name, shape))
        if per_message == 1:
            figures.append(Figure(
                f"5 telemetry ×1 ({name})", "MQTT→telemetry rows, 1 reading/message",
                count / elapsed, "msg/s", alone, "≥ 10,000 msg/s (baseline: bridge alone)",
                count / elapsed >= 10_000,
                {"readings": readings, "seconds": elapsed, "stored_when_the_last_was": early},
            ))  # fmt: skip
        else:
            figures.append(Figure(
                f"5 telemetry ×{per_message} ({name})",
                f"MQTT→telemetry rows, {per_message} readings/message", readings / elapsed,
                "reading/s", alone * per_message if alone else None,
                "≥ 50,000 reading/s (baseline: bridge alone × readings)",
                readings / elapsed >= 50_000,
                {"messages": count, "messages_per_s": count / elapsed, "seconds": elapsed,
                 "stored_when_the_last_was": early},
            ))  # fmt: skip
    return figures


# -- the run -------------------------------------------------------------------------------------
def stages(run: Run, args: argparse.Namespace) -> list[tuple[str, Callable[[], list[Figure]]]]:
    """(name, stage) in the order they run."""
    alerts, messages = args.alerts, args.telemetry_messages
    return [
        *((f"bridge alone, {shape}",
           partial(stage_bridge, run, shape, alerts if shape == "alerts" else messages))
          for shape in SHAPES),
        ("end to end", lambda: stage_end_to_end(run, alerts)),
        ("latency at 500/s", lambda: stage_latency(run, args.latency_s)),
        ("telemetry ×1 end to end", lambda: stage_telemetry(run, "telemetry ×1", messages)),
        ("telemetry ×N end to end", lambda: stage_telemetry(run, "telemetry ×N", messages)),
    ]  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    options = parse(argv)
    config = load_config(DEMO_CONFIG)
    results = run_facts("stream_e2e", reproduce("stream_e2e", argv))
    figures: list[Figure] = []
    wanted = [word.strip() for word in options.only.split(",") if word.strip()]
    with (
        tempfile.TemporaryDirectory(prefix="citywatch-before-") as scratch,
        private_stack(config) as stack,
    ):
        trees: dict[str, Path | None] = {}
        if options.before:
            trees["before"] = tree_at(options.before, Path(scratch))
        trees["now"] = None
        run = Run(config, stack.endpoints, stack.data_dir, trees, options.readings_per_message,
                  options.bridges)  # fmt: skip
        chosen = [(n, s) for n, s in stages(run, options) if not wanted or any(w in n for w in wanted)]  # fmt: skip
        try:
            with counted_progress() as progress:
                task = progress.add_task("bridge and end to end", total=len(chosen))
                for name, stage in chosen:
                    progress.update(task, description=name)
                    figures.extend(stage())
                    progress.advance(task)
        finally:
            clients.close_connections()
            for name in list(run.running):
                stop(run, name)
    console.print(figures_table("bridge and end to end (embedded stack, this machine)", figures))
    if options.before:
        say(f"'before' is the bridge of {options.before}; the app is this checkout's in both")
    save(results | {"results": [f.record() for f in figures]}, options.out, "stream_e2e")
    return 0


def parse(argv: Sequence[str]) -> argparse.Namespace:
    options = parser(__doc__ or "", "default benchmarks/results/stream_e2e.json")
    add = options.add_argument
    add("--alerts", type=int, default=20000, help="alerts per throughput stage")
    add("--telemetry-messages", type=int, default=20000, help="messages per telemetry stage")
    add("--readings-per-message", type=int, default=10, help="readings of a sampled message")
    add("--latency-s", type=float, default=10.0, help="seconds of the 500/s latency run")
    add("--bridges", type=int, default=1, help="bridges sharing the subscription")
    add("--before", default="", help="git revision whose bridge runs as 'before'")
    add("--only", default="", help="only the stages whose name contains one of these words")
    return options.parse_args(argv)


if __name__ == "__main__":
    threading.excepthook = lambda hook: console.print(f"thread failed: {hook.exc_value!r}")
    sys.exit(main())
