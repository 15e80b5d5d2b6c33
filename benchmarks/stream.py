"""Benchmark of the stream tier on the embedded stack, each stage against a bare baseline
measured in the same run (machines are noisy; the ratios are what we hold ourselves to).

Stages (issue 5 targets):

1. bridge alone (MQTT → Kafka acked → MQTT acked) vs a bare paho QoS 1 subscriber receiving
   the same messages, for alerts, telemetry of one reading and of ``--readings-per-message``
   (benchmarks/stream_e2e.py, which also runs an older revision's bridge beside it).
2. Faust app (Kafka → validation, dedup, work orders committed) vs **the same work without
   Faust** (issue 22): a plain aiokafka loop running the app's own intake, alert handler and
   database steps on the same kind of records (benchmarks/same_work_loop.py): ratio ≥ 0.8.
   The old baseline, a bare aiokafka consume → psycopg COPY loop that does none of the work,
   is kept in the row's notes. Both start from records already in
   Kafka (the app is paused with SIGSTOP while they are produced, timed from SIGCONT) and
   are timed to their last commit (the app's: the commit timestamp of the transaction that
   linked its last alert; the embedded stack tracks commit timestamps). Run
   twice: every alert a new incident (the worst case: each opens a work order), and
   episodes of ``--alerts-per-episode`` alerts (start, updates, end: one work order each).
   Two reference rows run a worker that does nothing (benchmarks/faust_floor.py, the app's
   transport and settings) on the same kind of records against the same baseline: as a
   Faust agent (the ceiling of any Faust agent on this machine) and through a batch lane
   as the app receives its records (stream/batch_lane.py: the app's ceiling).
3. end to end (MQTT in → work orders committed) ≥ 5,000 alerts/s, against the app's own rate
   from Kafka in the same run (issue 22).
4. latency at a steady 500 alerts/s: p99 MQTT-publish → work order committed ≤ 300 ms.
5. telemetry end to end: ≥ 10,000 messages/s of one reading, ≥ 50,000 readings/s of a
   sampled sensor's messages (``--readings-per-message``, default 10: the latest reading
   plus nine earlier samples, ``telemetry_every_sample``), against the bridge alone on the
   same payloads (row 1). Stages 1, 3–5 are benchmarks/stream_e2e.py's; gateways publish
   through a lean MQTT client (a paho publisher here would be what is measured).

    .venv/bin/python -m benchmarks.stream [--alerts 20000] [--telemetry 20000]
        [--latency-s 10] [--alerts-per-episode 5] [--readings-per-message 10] [--only WORDS]

Prints a table and writes benchmarks/results/stream.json. Starts (and stops) its own
embedded stack in a temporary directory, with the demo site's accounts
(``benchmarks/private_stack.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psycopg

from benchmarks import same_work_loop
from benchmarks import stream_clients as clients
from benchmarks import stream_e2e as e2e
from benchmarks.harness import (
    DEMO_CONFIG,
    REPO,
    Figure,
    console,
    counted_progress,
    figures_table,
    parser,
    reproduce,
    run_facts,
    save,
)
from benchmarks.private_stack import private_stack
from citywatch.config import CitywatchConfig, load_config
from citywatch.contracts import Alert, encode
from citywatch.stack.child import CliProcess
from citywatch.stack.endpoints import Endpoints


# -- stages --------------------------------------------------------------------------------------
def stage_app(
    config: CitywatchConfig, endpoints: Endpoints, data_dir: Path, count: int, per_episode: int
) -> Figure:
    """Faust app (validate + store + dedup + work orders) vs a bare consume → COPY loop."""
    app = STATE.get("app")
    if app is None:
        app = STATE["app"] = clients.start_cli(["stream", "app"], data_dir)
        # Let the app join and drain what the bridge stage produced (work orders too).
        clients.wait_until(
            lambda: (
                clients.scalar(endpoints, "SELECT count(*) FROM alerts")
                >= (count if "bridge" in STATE else 0)
            ),
            300,
            "the app to catch up",
        )
        # See a few alerts through, so the clock below starts on a worker that is running.
        warm = clients.alerts("warm-up", 20)
        warm_values = [encode(a) for a in warm]
        asyncio.run(
            clients.produce_records(
                endpoints, "citywatch.alerts", warm_values, clients.ALERT_HEADERS
            )
        )
        clients.commit_times(endpoints, [a.id for a in warm], timeout_s=120)
    run = f"app{per_episode}"
    batch = clients.alerts(run, count, per_episode=per_episode)
    values = [encode(a) for a in batch]
    with psycopg.connect(endpoints.database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM work_order_alerts WHERE alert_id LIKE %s", (f"b-{run}-%",))
    # Both sides start from records already in Kafka: the app is paused while they are
    # produced (the bare loop below never shares the CPU with a producer either).
    app.process.send_signal(signal.SIGSTOP)
    try:
        partition, offset = asyncio.run(
            clients.produce_records(endpoints, "citywatch.alerts", values, clients.ALERT_HEADERS)
        )
    finally:
        started = time.time()
        app.process.send_signal(signal.SIGCONT)
    app_rate = count / clients.committed_by(endpoints, [a.id for a in batch], started)
    bare_rate = asyncio.run(
        clients.bare_copy_rate(endpoints, "citywatch.alerts", partition, offset, count)
    )
    same = f"same{per_episode}"
    same_rate = same_work_rate(config, endpoints, data_dir, elsewhere(batch, same), same)
    notes: dict[str, float] = {}
    if before := os.environ.get("SAME_BEFORE"):  # the same work at an earlier revision
        moved = elsewhere(elsewhere(batch, same), f"before{per_episode}")
        notes[f"same_work_at_{before}"] = same_work_rate(
            config, endpoints, data_dir, moved, f"before{per_episode}", revision=before
        )
    episodes = "" if per_episode == 1 else f", episodes of {per_episode}"
    return Figure(
        f"2 Faust app{episodes}",
        "Kafka→work orders committed"
        + (", each alert a new incident" if per_episode == 1 else ", start/updates/end"),
        app_rate, "alert/s", same_rate, "≥ 0.8× the same work without Faust",
        app_rate / same_rate >= 0.8,
        notes={"bare_consume_copy_per_s": bare_rate, "app_over_bare": app_rate / bare_rate,
               **notes},
    )  # fmt: skip


def elsewhere(batch: list[Alert], run: str) -> list[Alert]:
    """The same alerts, renamed for ``run`` and moved 20 km north: the same work on the same
    layout, without merging into the work orders the app just opened."""
    out = []
    for alert in batch:
        location = alert.location
        if location.lat is not None:
            location = location.model_copy(update={"lat": location.lat + 0.18})
        out.append(alert.model_copy(update={
            "id": f"{alert.id}.{run}", "episode_id": f"{alert.episode_id}.{run}",
            "location": location,
        }))  # fmt: skip
    return out


def same_work_rate(
    config: CitywatchConfig, endpoints: Endpoints, data_dir: Path, batch: list[Alert], run: str,
    revision: str | None = None,
) -> float:
    """Alerts/s of the app's own work in a plain aiokafka loop (benchmarks/same_work_loop.py)
    over ``batch``, produced to a topic of its own (the app must not take them too); with
    ``revision``, the loop and the app's code as they were at that git revision."""
    topic = f"bench.{run}"
    partition, offset = asyncio.run(
        clients.produce_records(endpoints, topic, [encode(a) for a in batch], clients.ALERT_HEADERS)
    )
    env = {
        **os.environ, "SAME_BOOTSTRAP": endpoints.kafka_bootstrap, "SAME_TOPIC": topic,
        "SAME_PARTITION": str(partition), "SAME_OFFSET": str(offset),
        "SAME_COUNT": str(len(batch)), "SAME_DATABASE_URL": endpoints.database_url,
        "SAME_CONFIG": str(DEMO_CONFIG), "SAME_DATA_DIR": str(data_dir / "same-work"),
        "SAME_PREFIX": config.services.kafka.topic_prefix,
    }  # fmt: skip
    command, extra, cwd = same_work_loop.command_at(revision, data_dir / f"code-{run}")
    env.update(extra)
    if os.environ.get("SAME_PYSPY"):  # collapsed stacks of the loop, for flame graphs
        spy = Path(sys.executable).with_name("py-spy")
        command = [str(spy), "record", "-r", "250", "-f", "raw", "-o", os.environ["SAME_PYSPY"], "--", *command]  # fmt: skip
    done = subprocess.run(
        command,
        env=env, capture_output=True, text=True, timeout=600, cwd=cwd,
    )  # fmt: skip
    rates = re.findall(r"alerts/s ([0-9.]+)", done.stdout)
    if done.returncode != 0 or not rates:
        raise RuntimeError(f"the same-work loop failed: {done.stderr[-2000:]}")
    return float(rates[-1])


def stage_faust_floor(endpoints: Endpoints, data_dir: Path, count: int, mode: str) -> Figure:
    """What receiving records costs in a Faust worker (same transport and settings as the
    app) that does nothing with them, vs the bare consume → COPY loop on the same records:
    ``mode`` "agent", a Faust agent's ``take_events``; "lane", the batch lane the app uses
    (stream/batch_lane.py). The app cannot be faster than its lane's row."""
    topic = f"bench.faust-floor-{mode}"
    values = [encode(a) for a in clients.alerts("floor", count)]
    partition, offset = asyncio.run(
        clients.produce_records(endpoints, topic, values, clients.ALERT_HEADERS)
    )
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
    bare_rate = asyncio.run(clients.bare_copy_rate(endpoints, topic, partition, offset, count))
    return Figure(
        f"2 Faust {mode} alone (reference)",
        f"Kafka→a {'Faust agent' if mode == 'agent' else 'batch lane'} that does nothing",
        floor_rate, "record/s", bare_rate,
        "the ceiling of the app" if mode == "lane" else "the ceiling of a Faust agent",
    )  # fmt: skip


STATE: dict[str, CliProcess] = {}


def parse(argv: Sequence[str]) -> argparse.Namespace:
    options = parser(__doc__ or "", "default benchmarks/results/stream.json")
    add = options.add_argument
    add(
        "--alerts",
        type=int,
        default=20000,
        help="alerts per throughput stage (several of the worker's 5,000-alert batches)",
    )
    add("--telemetry", type=int, default=20000, help="messages per telemetry stage")
    add(
        "--alerts-per-episode",
        type=int,
        default=5,
        help="alerts per episode (start, updates, end) in the second Faust-app run",
    )
    add(
        "--readings-per-message",
        type=int,
        default=10,
        help="readings a sampled sensor sends per message (the second telemetry run)",
    )
    add("--latency-s", type=float, default=10.0)
    add(
        "--only",
        default="",
        help="run only the stages whose name contains one of these"
        " comma-separated words (e.g. 'Faust,lane')",
    )
    return options.parse_args(argv)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse(argv)
    config = load_config(DEMO_CONFIG)
    results = run_facts("stream", reproduce("stream", argv))
    figures: list[Figure] = []
    n, wanted = args.alerts, [word.strip() for word in args.only.split(",") if word.strip()]
    with private_stack(config) as stack:
        data, points = stack.data_dir, stack.endpoints
        e2e_run = e2e.Run(config, points, data, {"now": None}, args.readings_per_message,
                          running=STATE)  # fmt: skip
        t = args.telemetry
        stages: list[tuple[str, Callable[[], Figure | list[Figure]]]] = [
            ("bridge vs bare subscriber", lambda: [
                f for shape in e2e.SHAPES
                for f in e2e.stage_bridge(e2e_run, shape, n if shape == "alerts" else t)
            ]),
            ("Faust app vs consume→COPY", lambda: stage_app(config, points, data, n, 1)),
            ("Faust agent alone", lambda: stage_faust_floor(points, data, n, "agent")),
            ("batch lane alone", lambda: stage_faust_floor(points, data, n, "lane")),
            ("Faust app, lifecycle episodes",
             lambda: stage_app(config, points, data, n, args.alerts_per_episode)),
            ("end to end", lambda: e2e.stage_end_to_end(e2e_run, n)),
            ("latency at 500/s", lambda: e2e.stage_latency(e2e_run, args.latency_s)),
            ("telemetry, one reading a message",
             lambda: e2e.stage_telemetry(e2e_run, "telemetry ×1", t)),
            ("telemetry, sampled", lambda: e2e.stage_telemetry(e2e_run, "telemetry ×N", t)),
        ]  # fmt: skip
        stages = [
            (name, run) for name, run in stages if not wanted or any(w in name for w in wanted)
        ]
        try:
            with counted_progress() as progress:
                task = progress.add_task("stream benchmark", total=len(stages))
                for name, run in stages:
                    progress.update(task, description=name)
                    done = run()
                    figures.extend(done if isinstance(done, list) else [done])
                    progress.advance(task)
        finally:
            clients.close_connections()
            for process in STATE.values():
                process.stop()
    console.print(figures_table("stream benchmark (embedded stack, this machine)", figures))
    save(results | {"results": [f.record() for f in figures]}, args.out, "stream")
    return 0


if __name__ == "__main__":
    sys.exit(main())
