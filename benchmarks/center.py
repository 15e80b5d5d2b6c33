"""Command-center benchmark: the work-order list and the live feed on a city-sized database.

Targets (issue 6, "Done means"):

- list query p95 ≤ 50 ms with 100,000 work orders and 1,000,000 alerts in the database;
- live-feed fan-out to 200 SSE clients keeps p99 delivery ≤ 1 s at 100 events/s.

Method.

1. Data. A private PostgreSQL (the embedded stack's own ``PostgresService``: same binaries,
   same server settings, in a temporary directory, nothing else of the stack) is migrated
   with ``citywatch.stream.migrate`` and filled with COPY. Every work order is played through
   the real state machine (``citywatch.workorder.lifecycle``): opened over the last 90 days,
   dispatched, signed, started, resolved, verified, closed — some returned (退单), extended
   (延期), sent back for rework, dismissed as false positives, reopened, or stalled and so
   overdue and escalated on the config's escalation steps — with step times scaled to the
   kind's SLA tier and nothing after "now". Kinds, categories, departments, grid units,
   tiers and devices are the demo site's (``configs/demo-district.yaml``); positions scatter
   around the site's devices (≈31.43 N, 119.48 E). Alerts (start, updates, end of one to
   a few episodes per order; sizes drawn from a log-normal, so most orders have a few and
   some hundreds) are linked in ``work_order_alerts``; the timeline goes to
   ``workorder_events``. The loading sessions run with ``session_replication_role =
   replica``, which skips triggers: the foreign-key checks (the data is consistent by
   construction; the smoke test checks it) and migration 0004's feed-position and NOTIFY
   triggers — so the loader numbers ``feed_id`` itself (in generation order) and sets
   ``workorder_feed_seq`` after it. Then VACUUM ANALYZE, the state autovacuum keeps a live
   database in.

2. List. The center app (``create_app``) runs under uvicorn in its own process (one worker,
   as ``citywatch center serve`` would). From this process one keep-alive httpx client
   times ``GET /api/v1/work-orders`` with typical filters (none; open; a department; a
   state; kind + since; a bounding box; overdue; page 2 by cursor), request by request,
   rounds in random order, each round also timing the baseline: ``GET /api/v1/me``, the
   cheapest authenticated request (auth from the token cache, no query). The figure to
   hold across machines is list p95 / baseline p95; the target is absolute (≤ 50 ms for
   every query's p95). The detail endpoint (``GET /work-orders/{id}``, which reads the
   order's alerts) is timed too, for information.

3. Feed. 200 SSE clients (aiohttp, one asyncio loop, in a third process) hold
   ``GET /api/v1/feed?after=<position before the run>``; this process inserts work-order
   events at the rate asked, one transaction each (the triggers number and NOTIFY them),
   and notes each commit's wall time by feed position; the clients note when each event
   arrives. Delivery latency = arrival − commit, over every (client, event); completeness =
   every client got every event once and in order. A bare ``LISTEN`` connection in this
   process gives commit → NOTIFY as the floor of what the feed can do. Latency depends on
   how much CPU the center's one process gets, so the figure to compare across machines
   is the center's CPU per delivery (µs per event × client, from its CPU time over the
   run) and the share of a core the asked rate × clients needs at that cost; latency by
   fifth of the run shows whether delivery keeps pace or falls progressively behind.
   ``--profile-server`` runs the center under cProfile (slower) and prints its hot spots.

    .venv/bin/python -m benchmarks.center [--work-orders 100000] [--alerts 1000000]
        [--clients 200] [--rate 100] [--seconds 20] [--rounds 100] [--quick]

Writes benchmarks/results/center-<UTC time>.json and prints tables with pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import itertools
import json
import math
import os
import platform
import pstats
import random
import secrets
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import httpx
import psycopg
from rich.console import Console
from rich.live import Live
from rich.progress import Progress
from rich.table import Table

from benchmarks.center_data import PrivatePostgres, generate
from citywatch.cli.progress import counted_progress
from citywatch.config import CitywatchConfig, load_config
from citywatch.stack.ports import pick_free_port
from citywatch.stream.migrate import migrate
from citywatch.workorder import lifecycle as lc

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "demo-district.yaml"
RESULTS = Path(__file__).resolve().parent / "results"
LIST_P95_TARGET_MS = 50.0
FEED_P99_TARGET_S = 1.0
BENCH_USER = "bench"
console = Console(width=None if sys.stdout.isatty() else 140)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100) by nearest rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def spread(values: Sequence[float], scale: float = 1.0) -> dict[str, float]:
    """p50/p95/p99/max/mean of ``values`` times ``scale`` (1000: seconds → ms)."""
    if not values:
        return {
            "n": 0,
            "p50": math.nan,
            "p95": math.nan,
            "p99": math.nan,
            "max": math.nan,
            "mean": math.nan,
        }
    return {
        "n": len(values),
        "p50": percentile(values, 50) * scale,
        "p95": percentile(values, 95) * scale,
        "p99": percentile(values, 99) * scale,
        "max": max(values) * scale,
        "mean": statistics.fmean(values) * scale,
    }


# -- the center, in its own process -------------------------------------------------------------
def bench_config(token_sha256: str) -> CitywatchConfig:
    """The demo site with one admin, the benchmark's, whose token is given by its hash."""
    demo = load_config(CONFIG)
    user = {
        "name": BENCH_USER,
        "role": "admin",
        "display_name": "benchmark",
        "token_sha256": token_sha256,
    }
    center = demo.center.model_dump() | {"users": [user]}
    return CitywatchConfig.model_validate(demo.model_dump() | {"center": center})


def serve_child(port: int) -> None:
    """The center app under uvicorn (one worker, as ``citywatch center serve`` runs it)."""
    import uvicorn

    from citywatch.center.app import create_app
    from citywatch.center.settings import CenterSettings

    settings = CenterSettings(
        config=bench_config(os.environ["CITYWATCH_BENCH_TOKEN_SHA256"]),
        database_url=os.environ["CITYWATCH_BENCH_DATABASE_URL"],
        config_dir=CONFIG.parent,
    )
    app = create_app(settings)
    profile_path = os.environ.get("CITYWATCH_BENCH_PROFILE")
    if not profile_path:
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
        return
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    finally:
        profiler.disable()
        profiler.dump_stats(profile_path)


def profile_top(path: Path, lines: int = 30) -> str:
    """The server's functions by own time, from its cProfile dump."""
    text = StringIO()
    pstats.Stats(str(path), stream=text).sort_stats("tottime").print_stats(lines)
    return text.getvalue()


def child_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "benchmarks.center", "--child", *args]  # cwd: the repository


class ServerProcess:
    """``serve_child`` in a subprocess on a free port; ready once ``/healthz`` answers."""

    def __init__(
        self, database_url: str, token: str, log_path: Path, profile: Path | None = None
    ) -> None:
        from citywatch.center.auth import hash_token

        self.port = pick_free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = os.environ | {
            "CITYWATCH_BENCH_DATABASE_URL": database_url,
            "CITYWATCH_BENCH_TOKEN_SHA256": hash_token(token),
        }
        if profile is not None:
            env["CITYWATCH_BENCH_PROFILE"] = str(profile)
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                child_argv("server", "--port", str(self.port)),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=REPO,
            )
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the center exited while starting; see {log_path}:\n"
                    f"{log_path.read_text()[-3000:]}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the center did not answer /healthz in 60 s; see {log_path}")
            time.sleep(0.1)

    def cpu_s(self) -> float:
        return cpu_seconds(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (0 when it is gone)."""
    import psutil

    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


# -- list queries --------------------------------------------------------------------------------
Params = dict[str, str | list[str]]


def list_queries(
    client: httpx.Client, now: datetime, config: CitywatchConfig
) -> list[tuple[str, Params]]:
    """The typical filters of a duty officer's list, with values that exist in the data."""
    center = config.site.center
    box = ",".join(
        f"{v:.4f}"
        for v in (center.lon - 0.006, center.lat - 0.005, center.lon + 0.006, center.lat + 0.005)
    )
    since = (now - timedelta(days=7)).isoformat()
    first = client.get("/api/v1/work-orders")
    cursor = first.json().get("next_cursor") if first.status_code == 200 else None
    queries: list[tuple[str, Params]] = [
        ("no filter", {}),
        ("open=true", {"open": "true"}),
        ("department=drainage", {"department": "drainage"}),
        ("state=in_progress", {"state": ["in_progress"]}),
        ("kind=smoke + since 7 d", {"kind": ["smoke"], "since": since}),
        ("bbox ≈1.1×1.1 km", {"bbox": box}),
        ("overdue=true", {"overdue": "true"}),
        (
            "open + department + priority≤2",
            {"open": "true", "department": "fire", "priority": ["1", "2"]},
        ),
    ]
    if cursor:
        queries.append(("page 2 (cursor)", {"cursor": cursor}))
    return queries


@dataclass
class Timings:
    path: str
    params: Params = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)
    rows: int | None = None
    errors: Counter[str] = field(default_factory=Counter)


def measure_list(
    base_url: str,
    token: str,
    database_url: str,
    config: CitywatchConfig,
    rounds: int,
    warmup: int,
    seed: int,
    progress: Progress,
) -> dict[str, Any]:
    """Time each list query, the baseline and the detail, ``rounds`` times, interleaved."""
    rng = random.Random(seed)
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
        now = datetime.now(UTC)
        probe = client.get("/api/v1/work-orders", params={"limit": "1"})
        if probe.status_code in (404, 405):
            return {"available": False, "why": f"GET /api/v1/work-orders: {probe.status_code}"}
        runs = {"baseline: GET /me": Timings("/api/v1/me")}
        for name, params in list_queries(client, now, config):
            runs[name] = Timings("/api/v1/work-orders", params)
        with psycopg.connect(database_url) as conn:
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM work_orders ORDER BY random() LIMIT %s", (rounds + warmup,)
                )
            ]
        detail = Timings("/api/v1/work-orders/{id}")
        task = progress.add_task("list queries", total=warmup + rounds)
        names = list(runs)
        for r in range(warmup + rounds):
            rng.shuffle(names)
            for name in [*names, "detail"]:
                run = detail if name == "detail" else runs[name]
                path = run.path.format(id=ids[r % len(ids)]) if name == "detail" else run.path
                began = time.perf_counter()
                response = client.get(path, params=run.params)
                elapsed = time.perf_counter() - began
                if response.status_code != 200:
                    run.errors[f"{response.status_code} {response.text[:200]}"] += 1
                    continue
                if r >= warmup:
                    run.seconds.append(elapsed)
                if run.rows is None and run.path.endswith("work-orders"):
                    run.rows = len(response.json()["items"])
            progress.advance(task)
    baseline = spread(runs.pop("baseline: GET /me").seconds, 1000)
    queries: dict[str, dict[str, Any]] = {}
    for name, run in runs.items():
        figures = spread(run.seconds, 1000)
        queries[name] = {
            "params": run.params,
            "rows": run.rows,
            "ms": figures,
            "p95_over_baseline_p95": figures["p95"] / baseline["p95"],
            "errors": dict(run.errors),
        }
    every = [s for run in runs.values() for s in run.seconds]
    overall = spread(every, 1000)
    worst = max(q["ms"]["p95"] for q in queries.values())
    return {
        "available": True,
        "rounds": rounds,
        "warmup_rounds": warmup,
        "client": "httpx.Client, one keep-alive connection, sequential, in the benchmark process",
        "baseline": {"request": "GET /api/v1/me", "ms": baseline},
        "queries": queries,
        "overall_ms": overall,
        "overall_p95_over_baseline_p95": overall["p95"] / baseline["p95"],
        "worst_query_p95_ms": worst,
        "detail": {
            "request": "GET /api/v1/work-orders/{random id}",
            "ms": spread(detail.seconds, 1000),
            "errors": dict(detail.errors),
        },
        "target": f"every list query's p95 ≤ {LIST_P95_TARGET_MS:g} ms",
        "pass": worst <= LIST_P95_TARGET_MS and not any(q["errors"] for q in queries.values()),
    }


# -- the live feed -------------------------------------------------------------------------------
async def sse_clients(url: str, token: str, clients: int, after: int, out: Path) -> None:
    """``clients`` SSE connections on one loop; each notes (feed position, arrival wall time).

    Talks to the parent on stdout (``ready``, ``progress N``, ``done``) and stdin
    (``end <last position>``: finish once every client has it, or after 15 s).
    """
    import aiohttp

    ids: list[list[int]] = [[] for _ in range(clients)]
    times: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    payload_checked: list[bool] = [False] * clients
    connected = asyncio.Event()
    opened = 0

    async def one(session: aiohttp.ClientSession, i: int) -> None:
        nonlocal opened
        params = {"access_token": token, "after": str(after)}
        async with session.get(url, params=params) as response:
            if response.status != 200:
                errors.append(f"client {i}: HTTP {response.status} {await response.text()}")
                return
            opened += 1
            if opened == clients:
                connected.set()
            buffer = b""
            async for chunk in response.content.iter_any():
                arrived = time.time()
                buffer = (buffer + chunk).replace(b"\r\n", b"\n")
                *blocks, buffer = buffer.split(b"\n\n")
                for block in blocks:
                    for line in block.split(b"\n"):
                        if line.startswith(b"id:"):
                            ids[i].append(int(line[3:]))
                            times[i].append(arrived)
                    if not payload_checked[i] and b"\ndata:" in b"\n" + block:
                        data = next(x for x in block.split(b"\n") if x.startswith(b"data:"))
                        body = json.loads(data[5:])
                        if body["feed_id"] != ids[i][-1] or "work_order" not in body:
                            errors.append(f"client {i}: unexpected event {body}")
                        payload_checked[i] = True

    def say(line: str) -> None:
        print(line, flush=True)

    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=None)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=timeout
    ) as session:
        tasks = [asyncio.create_task(one(session, i)) for i in range(clients)]
        waiting = asyncio.create_task(connected.wait())
        await asyncio.wait([waiting, *tasks], timeout=60, return_when=asyncio.FIRST_COMPLETED)
        say("ready" if connected.is_set() else f"failed {errors[:3]}")
        loop = asyncio.get_running_loop()
        end_line = loop.run_in_executor(None, sys.stdin.readline)
        while not end_line.done():
            await asyncio.sleep(0.5)
            say(f"progress {sum(len(x) for x in ids)}")
        words = (await end_line).split()
        last = int(words[1]) if len(words) == 2 else after
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any((x[-1] if x else 0) < last for x in ids):
            await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    out.write_text(
        json.dumps(
            {"ids": ids, "times": times, "errors": errors, "payload_checked": sum(payload_checked)}
        )
    )
    say("done")


class ClientsProcess:
    """``sse_clients`` in a subprocess, with its stdout read by a thread."""

    def __init__(
        self, base_url: str, token: str, clients: int, after: int, out: Path, log: Path
    ) -> None:
        self.out = out
        self.received = 0
        self.ready = threading.Event()
        self.done = threading.Event()
        self.failure = ""
        env = os.environ | {"CITYWATCH_BENCH_TOKEN": token}
        argv = child_argv("clients", "--url", f"{base_url}/api/v1/feed", "--clients",
                          str(clients), "--after", str(after), "--out", str(out))  # fmt: skip
        with open(log, "ab") as stderr:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True,
                env=env, cwd=REPO,
            )  # fmt: skip
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            word, _, rest = line.strip().partition(" ")
            if word == "ready":
                self.ready.set()
            elif word == "progress":
                self.received = int(rest)
            elif word == "done":
                self.done.set()
            elif word == "failed":
                self.failure = rest
                self.ready.set()

    def end(self, last: int) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(f"end {last}\n")
        self.process.stdin.flush()
        if not self.done.wait(60):
            raise RuntimeError("the SSE clients did not finish within 60 s")
        self.process.wait(10)
        result: dict[str, Any] = json.loads(self.out.read_text())
        return result

    def cpu_s(self) -> float:
        return cpu_seconds(self.process.pid)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


class BareListener:
    """A plain LISTEN connection noting when each event's NOTIFY arrives (the floor)."""

    def __init__(self, database_url: str) -> None:
        self.arrivals: dict[int, float] = {}
        self._stop = threading.Event()
        self._conn = psycopg.connect(database_url, autocommit=True)
        self._conn.execute("LISTEN workorder_events")
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for notify in self._conn.notifies(timeout=0.2):
                self.arrivals[int(json.loads(notify.payload)["feed_id"])] = time.time()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._conn.close()


def feed_targets(conn: psycopg.Connection, count: int = 500) -> list[list[Any]]:
    """[id, state, last seq] of open work orders (any, where too few are open)."""
    open_states = sorted(s.value for s in lc.OPEN_STATES)
    rows = conn.execute(
        """SELECT w.id, w.state, (SELECT max(seq) FROM workorder_events e WHERE e.work_order_id = w.id)
           FROM work_orders w ORDER BY w.state = ANY(%s) DESC, w.opened_at DESC LIMIT %s""",
        (open_states, count),
    ).fetchall()
    return [[r[0], r[1], r[2] or 0] for r in rows]


def write_events(
    database_url: str, rate: float, seconds: float, run: str, status: Any
) -> tuple[dict[int, float], dict[str, Any]]:
    """Insert ``rate × seconds`` work-order events on schedule, one transaction each; returns
    feed position → commit wall time, and how well the schedule was kept."""
    total = max(1, round(rate * seconds))
    commits: dict[int, float] = {}
    insert_s: list[float] = []
    behind_s: list[float] = []
    with psycopg.connect(database_url) as conn:
        targets = feed_targets(conn)
        conn.commit()
        began = time.perf_counter()
        for k in range(total):
            due = began + k / rate
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            behind_s.append(max(0.0, -wait))
            target = targets[k % len(targets)]
            target[2] += 1
            t0 = time.perf_counter()
            row = conn.execute(
                """INSERT INTO workorder_events (id, work_order_id, seq, event, from_state,
                       to_state, actor, time, reason, data)
                   VALUES (%s, %s, %s, 'bench', %s, %s, 'bench-writer', now(), 'feed benchmark', %s)
                   RETURNING feed_id""",
                (
                    f"{target[0]}.{target[2]}",
                    target[0],
                    target[2],
                    target[1],
                    target[1],
                    json.dumps({"run": run, "k": k}),
                ),
            ).fetchone()
            conn.commit()
            committed = time.time()
            insert_s.append(time.perf_counter() - t0)
            assert row is not None
            commits[int(row[0])] = committed
            status(k + 1, total)
        wall = time.perf_counter() - began
    return commits, {
        "events": total,
        "wall_s": round(wall, 3),
        "achieved_rate": total / wall,
        "insert_commit_ms": spread(insert_s, 1000),
        "behind_schedule_ms": spread(behind_s, 1000),
    }


def delivery(commits: dict[int, float], received: dict[str, Any], after: int) -> dict[str, Any]:
    """Latency and completeness of every client's stream against what was committed."""
    expected = sorted(commits)
    expected_set = set(expected)
    latencies: list[float] = []
    by_event: dict[int, list[float]] = {}
    first_seen: dict[int, float] = {}
    last_seen: dict[int, float] = {}
    clients = []
    for ids, times in zip(received["ids"], received["times"], strict=True):
        pairs = [(i, t) for i, t in zip(ids, times, strict=True) if i > after]
        got = [i for i, _ in pairs]
        seen: set[int] = set()
        for i, t in pairs:
            if i in expected_set and i not in seen:
                latencies.append(t - commits[i])
                by_event.setdefault(i, []).append(t - commits[i])
                first_seen[i] = min(first_seen.get(i, t), t)
                last_seen[i] = max(last_seen.get(i, t), t)
            seen.add(i)
        clients.append(
            {
                "received": len(got),
                "duplicates": len(got) - len(seen),
                "missing": len(expected_set - seen),
                "unexpected": len(seen - expected_set),
                "out_of_order": sum(1 for a, b in itertools.pairwise(got) if b <= a),
            }
        )
    complete = [
        c
        for c in clients
        if c["received"] == len(expected)
        and not c["duplicates"]
        and not c["missing"]
        and not c["out_of_order"]
        and not c["unexpected"]
    ]
    fan_out = [last_seen[i] - first_seen[i] for i in first_seen]
    fifths = [expected[len(expected) * k // 5 : len(expected) * (k + 1) // 5] for k in range(5)]
    by_fifth = [
        spread([x for i in part for x in by_event.get(i, [])], 1000) for part in fifths if part
    ]
    return {
        "latency_ms": spread(latencies, 1000),
        "latency_by_fifth_of_run_ms": [
            {"p50": f["p50"], "p99": f["p99"], "max": f["max"]} for f in by_fifth
        ],
        "fan_out_spread_ms": spread(fan_out, 1000),
        "clients": len(clients),
        "clients_complete": len(complete),
        "every_client_every_event_once_in_order": len(complete) == len(clients) and bool(clients),
        "duplicates": sum(c["duplicates"] for c in clients),
        "missing": sum(c["missing"] for c in clients),
        "out_of_order": sum(c["out_of_order"] for c in clients),
        "unexpected": sum(c["unexpected"] for c in clients),
    }


def measure_feed(
    database_url: str,
    server: ServerProcess,
    token: str,
    clients: int,
    rate: float,
    seconds: float,
    work: Path,
) -> dict[str, Any]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT COALESCE(max(feed_id), 0) FROM workorder_events").fetchone()
    after = int(row[0]) if row else 0
    run = secrets.token_hex(4)
    swarm = ClientsProcess(
        server.url, token, clients, after, work / "sse-clients.json", work / "sse-clients.log"
    )
    listener: BareListener | None = None
    try:
        with console.status(f"connecting {clients} SSE clients…"):
            if not swarm.ready.wait(90) or swarm.failure:
                raise RuntimeError(
                    f"SSE clients could not connect: {swarm.failure or 'timeout'};"
                    f" see {work / 'sse-clients.log'}"
                )
        listener = BareListener(database_url)
        time.sleep(1.0)  # every stream is past its (empty) backlog and subscribed
        cpu_before = (server.cpu_s(), swarm.cpu_s(), time.perf_counter())
        expected_total = round(rate * seconds) * clients
        live_state = {"written": 0, "total": round(rate * seconds)}

        def render() -> Table:
            table = Table.grid(padding=(0, 2))
            table.add_row(
                "writer (this process)",
                f"{live_state['written']:,}/{live_state['total']:,} events at {rate:g}/s",
            )
            table.add_row(
                f"{clients} SSE clients (own process)",
                f"{swarm.received:,}/{expected_total:,} deliveries",
            )
            table.add_row(
                "bare LISTEN (this process)",
                f"{len(listener.arrivals) if listener else 0:,} notifications",
            )
            return table

        with Live(render(), console=console, refresh_per_second=4) as live:

            def status(written: int, total: int) -> None:
                live_state["written"] = written
                if written % max(1, int(rate / 4)) == 0 or written == total:
                    live.update(render())

            commits, writer = write_events(database_url, rate, seconds, run, status)
            deadline = time.monotonic() + 15
            while swarm.received < expected_total and time.monotonic() < deadline:
                time.sleep(0.1)
                live.update(render())
        console.line()
        cpu_after = (server.cpu_s(), swarm.cpu_s(), time.perf_counter())
        received = swarm.end(max(commits))
    finally:
        if listener is not None:
            listener.stop()
        swarm.kill()
    result = delivery(commits, received, after)
    floor = [listener.arrivals[i] - t for i, t in commits.items() if i in listener.arrivals]
    server_us = (cpu_after[0] - cpu_before[0]) / max(1, result["latency_ms"]["n"]) * 1e6
    p99_s = result["latency_ms"]["p99"] / 1000
    return {
        "clients": clients,
        "rate": rate,
        "seconds": seconds,
        "after_position": after,
        "writer": writer,
        **result,
        "bare_listen_latency_ms": spread(floor, 1000),
        "client_errors": received["errors"][:10],
        "payloads_checked": received["payload_checked"],
        "cpu_share_during_feed": {
            "server": round((cpu_after[0] - cpu_before[0]) / (cpu_after[2] - cpu_before[2]), 2),
            "clients": round((cpu_after[1] - cpu_before[1]) / (cpu_after[2] - cpu_before[2]), 2),
        },
        # Load-independent: what one (event, client) delivery costs the center, and what share
        # of one core the asked rate × clients needs at that cost.
        "server_cpu_us_per_delivery": round(server_us, 1),
        "server_cores_needed_at_this_load": round(server_us * rate * clients / 1e6, 2),
        "missing_means": "not received within 15 s + up to 15 s after the last commit",
        "target": f"p99 ≤ {FEED_P99_TARGET_S:g} s, every client every event once, in order",
        "pass": p99_s <= FEED_P99_TARGET_S and result["every_client_every_event_once_in_order"],
    }


# -- the run, the report and the command line ----------------------------------------------------
QUICK = {
    "work_orders": 500,
    "alerts": 5000,
    "clients": 5,
    "rate": 20.0,
    "seconds": 3.0,
    "rounds": 20,
    "warmup": 3,
}
FULL = {
    "work_orders": 100_000,
    "alerts": 1_000_000,
    "clients": 200,
    "rate": 100.0,
    "seconds": 20.0,
    "rounds": 100,
    "warmup": 5,
}


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work-orders", type=int, help=f"default {FULL['work_orders']:,}")
    parser.add_argument("--alerts", type=int, help=f"default {FULL['alerts']:,}")
    parser.add_argument("--clients", type=int, help=f"SSE clients (default {FULL['clients']})")
    parser.add_argument("--rate", type=float, help=f"feed events/s (default {FULL['rate']:g})")
    parser.add_argument("--seconds", type=float, help=f"feed run (default {FULL['seconds']:g})")
    parser.add_argument(
        "--rounds", type=int, help=f"requests per list query (default {FULL['rounds']})"
    )
    parser.add_argument("--warmup", type=int, help="untimed rounds first (default 5)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a tiny run: " + ", ".join(f"{k} {v:g}" for k, v in QUICK.items()),
    )
    parser.add_argument("--no-list", action="store_true", help="skip the list queries")
    parser.add_argument("--no-feed", action="store_true", help="skip the live feed")
    parser.add_argument(
        "--profile-server",
        action="store_true",
        help="run the center under cProfile and print where its time went (slows it down)",
    )
    parser.add_argument(
        "--out", type=Path, help="results JSON (default benchmarks/results/center-<time>.json)"
    )
    parser.add_argument("--child", choices=["server", "clients"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--after", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def reproduce(args: argparse.Namespace) -> str:
    words = [
        ".venv/bin/python",
        "-m",
        "benchmarks.center",
        "--work-orders",
        str(args.work_orders),
        "--alerts",
        str(args.alerts),
        "--clients",
        str(args.clients),
        "--rate",
        f"{args.rate:g}",
        "--seconds",
        f"{args.seconds:g}",
        "--rounds",
        str(args.rounds),
        "--seed",
        str(args.seed),
    ]
    words += ["--no-list"] if args.no_list else []
    words += ["--no-feed"] if args.no_feed else []
    words += ["--profile-server"] if args.profile_server else []
    return shlex.join(words)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start PostgreSQL and the center, generate the data, measure; the results."""
    config = load_config(CONFIG)
    token = secrets.token_urlsafe(32)
    load_start = os.getloadavg()
    results: dict[str, Any] = {
        "benchmark": "center",
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "reproduce": reproduce(args),
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
        "load_avg_at_start": load_start,
    }
    with tempfile.TemporaryDirectory(prefix="citywatch-bench-center-") as tmp:
        work = Path(tmp)
        postgres = PrivatePostgres(work)
        server: ServerProcess | None = None
        try:
            with console.status("starting a private PostgreSQL…"):
                url = postgres.start()
                migrate(url)
            results["postgres"] = {
                "version": postgres.service.version(),
                "binaries": postgres.service.binaries.source,
                "settings": "the embedded stack's (citywatch.stack.postgres)",
            }
            with counted_progress(console) as progress:
                results["data"] = generate(
                    url, config, args.work_orders, args.alerts, args.seed, progress
                )
            with console.status("starting the center (uvicorn, own process)…"):
                profile = work / "server.prof" if args.profile_server else None
                server = ServerProcess(url, token, work / "center.log", profile)
            results["processes"] = {
                "benchmark": f"pid {os.getpid()}: data generator (COPY), list-query client"
                " (httpx, sequential), feed writer (psycopg), bare LISTEN",
                "server": f"pid {server.process.pid}: uvicorn, create_app, one worker, asyncio loop",
                "clients": f"{args.clients} SSE clients, aiohttp, one asyncio loop, own process",
                "postgres": f"pid {postgres.record.pid if postgres.record else '?'}: private server",
            }
            if not args.no_list:
                with counted_progress(console) as progress:
                    cpu = server.cpu_s()
                    began = time.perf_counter()
                    results["list"] = measure_list(
                        server.url,
                        token,
                        url,
                        config,
                        args.rounds,
                        args.warmup,
                        args.seed,
                        progress,
                    )
                    results["list"]["server_cpu_share"] = round(
                        (server.cpu_s() - cpu) / (time.perf_counter() - began), 2
                    )
            if not args.no_feed:
                results["feed"] = measure_feed(
                    url, server, token, args.clients, args.rate, args.seconds, work
                )
        finally:
            if server is not None:
                server.stop()
            postgres.stop()
        if args.profile_server and (work / "server.prof").exists():
            results["server_profile_top"] = profile_top(work / "server.prof")
    results["load_avg_at_end"] = os.getloadavg()
    parts = [results.get(k, {}).get("pass") for k in ("list", "feed")]
    results["pass"] = all(p is not False for p in parts)
    return results


def fmt(value: float | None, spec: str = ".1f") -> str:
    return (
        "–"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else format(value, spec)
    )


def ok(flag: bool | None) -> str:
    return "[green]✓[/]" if flag else "[red]✗[/]"


def percentiles(
    figures: dict[str, float], keys: Sequence[str] = ("p50", "p95", "p99")
) -> list[str]:
    return [fmt(figures[k]) for k in keys]


def list_table(listing: dict[str, Any]) -> Table:
    base = listing["baseline"]["ms"]
    table = Table(title=f"GET /api/v1/work-orders, {listing['rounds']} requests each (ms)")
    for column in ("query", "rows", "p50", "p95", "p99", "p95 / baseline p95", "target", "pass"):
        table.add_column(column, justify="left" if column in ("query", "pass") else "right")
    target = f"≤ {LIST_P95_TARGET_MS:g}"
    table.add_row("baseline: GET /me", "", *percentiles(base), "1.0", "", "")
    for name, q in listing["queries"].items():
        passed = q["ms"]["p95"] <= LIST_P95_TARGET_MS and not q["errors"]
        table.add_row(name, str(q["rows"]), *percentiles(q["ms"]),
                      fmt(q["p95_over_baseline_p95"]), target, ok(passed))  # fmt: skip
    table.add_row("[bold]all list queries[/]", "", *percentiles(listing["overall_ms"]),
                  fmt(listing["overall_p95_over_baseline_p95"]), target, ok(listing["pass"]))  # fmt: skip
    detail = listing["detail"]["ms"]
    table.add_row("detail /work-orders/{id} (info)", "", *percentiles(detail),
                  fmt(detail["p95"] / base["p95"]), "", "")  # fmt: skip
    return table


def feed_table(feed: dict[str, Any]) -> Table:
    table = Table(
        title=f"live feed: {feed['clients']} SSE clients, {feed['writer']['events']:,} events at"
        f" {feed['writer']['achieved_rate']:.1f}/s (ms, commit → arrival)"
    )
    for column in ("what", "p50", "p95", "p99", "max", "target", "pass"):
        table.add_column(column, justify="left" if column in ("what", "pass") else "right")
    keys = ("p50", "p95", "p99", "max")
    latency = feed["latency_ms"]
    table.add_row("SSE delivery", *percentiles(latency, keys), f"p99 ≤ {FEED_P99_TARGET_S * 1000:g}",
                  ok(latency["p99"] <= FEED_P99_TARGET_S * 1000))  # fmt: skip
    table.add_row("bare LISTEN (floor)", *percentiles(feed["bare_listen_latency_ms"], keys), "", "")
    table.add_row("first → last client, per event", *percentiles(feed["fan_out_spread_ms"], keys),
                  "", "")  # fmt: skip
    return table


def report(results: dict[str, Any]) -> None:
    data = results["data"]
    rows = data["rows"]
    console.print(
        f"[bold]data[/]: {rows['work_orders']:,} work orders, {rows['alerts']:,} alerts,"
        f" {rows['links']:,} links, {rows['events']:,} events in {data['copy_s']:.1f} s"
        f" ({data['rows_per_s']:,} rows/s) + VACUUM ANALYZE {data['vacuum_analyze_s']:.1f} s;"
        f" open {data['open']:,}, overdue {data['overdue']:,}, escalated {data['escalated']:,};"
        f" states {data['by_state']}",
        highlight=False,
    )
    listing = results.get("list")
    if listing and listing.get("available"):
        console.print(list_table(listing))
        for name, q in listing["queries"].items():
            for error, count in q["errors"].items():
                console.print(f"[red]{name}: {count}× {error}[/]", highlight=False)
    elif listing:
        console.print(f"[yellow]list queries not measured: {listing['why']}[/]")
    feed = results.get("feed")
    if feed:
        console.print(feed_table(feed))
        fifths = ", ".join(
            f"{f['p50']:.0f}/{f['p99']:.0f}" for f in feed["latency_by_fifth_of_run_ms"]
        )
        cpu = feed["cpu_share_during_feed"]
        console.print(
            f"completeness: {feed['clients_complete']}/{feed['clients']} clients got every event"
            f" once and in order (duplicates {feed['duplicates']}, missing {feed['missing']},"
            f" out of order {feed['out_of_order']}, unexpected {feed['unexpected']})"
            f" {ok(feed['every_client_every_event_once_in_order'])}\n"
            f"latency p50/p99 (ms) by fifth of the run: {fifths}\n"
            f"center CPU per delivery {feed['server_cpu_us_per_delivery']} µs: the rate × clients"
            f" need {feed['server_cores_needed_at_this_load']} of a core; CPU share during the"
            f" feed: center {cpu['server']}, clients {cpu['clients']}",
            highlight=False,
        )
    if results.get("server_profile_top"):
        console.print("[bold]cProfile of the center process, by own time:[/]")
        console.print(results["server_profile_top"], highlight=False, markup=False, soft_wrap=True)
    for name, where in results.get("processes", {}).items():
        console.print(f"  {name}: {where}", highlight=False)
    console.print(
        f"load average: start {results['load_avg_at_start']}, end {results['load_avg_at_end']}"
        f" on {results['cpus']} CPUs",
        highlight=False,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if args.child == "server":
        serve_child(args.port)
        return 0
    if args.child == "clients":
        asyncio.run(
            sse_clients(
                args.url, os.environ["CITYWATCH_BENCH_TOKEN"], args.clients, args.after, args.out
            )
        )
        return 0
    console.print(f"[bold]reproduce:[/] {reproduce(args)}", highlight=False, soft_wrap=True)
    results = run(args)
    report(results)
    out = args.out or RESULTS / f"center-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    console.print(f"wrote {out}")
    return 0 if results["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
