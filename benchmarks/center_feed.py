"""The live feed part of the center benchmark (see ``benchmarks/center.py`` for the method):
SSE clients in their own process, an event writer at a fixed rate, a bare ``LISTEN`` as the
floor, and the delivery latency and completeness of every (client, event).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from rich.live import Live
from rich.table import Table

from benchmarks.center_api import ServerProcess, child_argv
from benchmarks.harness import REPO, console, cpu_seconds, spread
from citywatch.workorder import lifecycle as lc

FEED_P99_TARGET_S = 1.0
FLAWS = ("duplicates", "missing", "out_of_order", "unexpected")
"""What can be wrong with one client's stream; a complete stream has none of them."""


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
    database_url: str, rate: float, seconds: float, run: str, status: Callable[[int], None]
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
                (f"{target[0]}.{target[2]}", target[0], target[2], target[1], target[1],
                 json.dumps({"run": run, "k": k})),
            ).fetchone()  # fmt: skip
            conn.commit()
            committed = time.time()
            insert_s.append(time.perf_counter() - t0)
            assert row is not None
            commits[int(row[0])] = committed
            status(k + 1)
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
        clients.append({
            "duplicates": len(got) - len(seen), "missing": len(expected_set - seen),
            "unexpected": len(seen - expected_set),
            "out_of_order": sum(1 for a, b in itertools.pairwise(got) if b <= a),
        })  # fmt: skip
    complete = [c for c in clients if not any(c.values())]
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
        **{flaw: sum(c[flaw] for c in clients) for flaw in FLAWS},
    }


def measure_feed(
    database_url: str, server: ServerProcess, token: str, clients: int, rate: float,
    seconds: float, work: Path,
) -> dict[str, Any]:  # fmt: skip
    """Connect the clients, write the events at ``rate``, wait for the deliveries; figures."""
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
        pids = (server.process.pid, swarm.process.pid)
        cpu_before = (*map(cpu_seconds, pids), time.perf_counter())
        total = round(rate * seconds)
        written = [0]

        def render() -> Table:
            table = Table.grid(padding=(0, 2))
            table.add_row("writer (this process)", f"{written[0]:,}/{total:,} events at {rate:g}/s")
            table.add_row(f"{clients} SSE clients (own process)",
                          f"{swarm.received:,}/{total * clients:,} deliveries")  # fmt: skip
            table.add_row("bare LISTEN (this process)",
                          f"{len(listener.arrivals) if listener else 0:,} notifications")  # fmt: skip
            return table

        with Live(render(), console=console, refresh_per_second=4) as live:

            def status(done: int) -> None:
                written[0] = done
                if done % max(1, int(rate / 4)) == 0 or done == total:
                    live.update(render())

            commits, writer = write_events(database_url, rate, seconds, run, status)
            deadline = time.monotonic() + 15
            while swarm.received < total * clients and time.monotonic() < deadline:
                time.sleep(0.1)
                live.update(render())
        console.line()
        cpu_after = (*map(cpu_seconds, pids), time.perf_counter())
        received = swarm.end(max(commits))
    finally:
        if listener is not None:
            listener.stop()
        swarm.kill()
    result = delivery(commits, received, after)
    floor = [listener.arrivals[i] - t for i, t in commits.items() if i in listener.arrivals]
    server_us = (cpu_after[0] - cpu_before[0]) / max(1, result["latency_ms"]["n"]) * 1e6
    p99_s = result["latency_ms"]["p99"] / 1000
    wall = cpu_after[2] - cpu_before[2]
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
            "server": round((cpu_after[0] - cpu_before[0]) / wall, 2),
            "clients": round((cpu_after[1] - cpu_before[1]) / wall, 2),
        },
        # Load-independent: what one (event, client) delivery costs the center, and what share
        # of one core the asked rate × clients needs at that cost.
        "server_cpu_us_per_delivery": round(server_us, 1),
        "server_cores_needed_at_this_load": round(server_us * rate * clients / 1e6, 2),
        "missing_means": "not received within 15 s + up to 15 s after the last commit",
        "target": f"p99 ≤ {FEED_P99_TARGET_S:g} s, every client every event once, in order",
        "pass": p99_s <= FEED_P99_TARGET_S and result["every_client_every_event_once_in_order"],
    }
