"""The center under test and the list part of the center benchmark (see
``benchmarks/center.py`` for the method): the app under uvicorn in its own process, and the
list queries timed against ``GET /me`` in the same rounds.
"""

from __future__ import annotations

import contextlib
import cProfile
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from rich.progress import Progress

from benchmarks.harness import DEMO_CONFIG, REPO, spread
from citywatch.config import CitywatchConfig, load_config
from citywatch.stack.ports import pick_free_port

LIST_P95_TARGET_MS = 50.0
BENCH_USER = "bench"


def bench_config(token_sha256: str) -> CitywatchConfig:
    """The demo site with one admin, the benchmark's, whose token is given by its hash."""
    demo = load_config(DEMO_CONFIG)
    user = {"name": BENCH_USER, "role": "admin", "display_name": "benchmark",
            "token_sha256": token_sha256}  # fmt: skip
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
        config_dir=DEMO_CONFIG.parent,
    )
    app = create_app(settings)
    profile_path = os.environ.get("CITYWATCH_BENCH_PROFILE", "")
    profiler = cProfile.Profile()
    if profile_path:
        profiler.enable()
    try:
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    finally:
        if profile_path:
            profiler.disable()
            profiler.dump_stats(profile_path)


def child_argv(*args: str) -> list[str]:
    """A child of the center benchmark (the server, the SSE clients), run from the repository."""
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
                child_argv("server", "--port", str(self.port)), stdout=log,
                stderr=subprocess.STDOUT, env=env, cwd=REPO,
            )  # fmt: skip
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

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


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
        ("open + department + priority≤2",
         {"open": "true", "department": "fire", "priority": ["1", "2"]}),
    ]  # fmt: skip
    if cursor:
        queries.append(("page 2 (cursor)", {"cursor": cursor}))
    return queries


@dataclass
class Timings:
    """One request's timings over the rounds (errors are not timed)."""

    path: str
    params: Params = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)
    rows: int | None = None
    errors: Counter[str] = field(default_factory=Counter)


def measure_list(
    base_url: str, token: str, database_url: str, config: CitywatchConfig, rounds: int,
    warmup: int, seed: int, progress: Progress,
) -> dict[str, Any]:  # fmt: skip
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
            sql = "SELECT id FROM work_orders ORDER BY random() LIMIT %s"
            ids = [r[0] for r in conn.execute(sql, (rounds + warmup,))]
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
            "params": run.params, "rows": run.rows, "ms": figures,
            "p95_over_baseline_p95": figures["p95"] / baseline["p95"], "errors": dict(run.errors),
        }  # fmt: skip
    every = [s for run in runs.values() for s in run.seconds]
    overall = spread(every, 1000)
    worst = max(q["ms"]["p95"] for q in queries.values())
    return {
        "available": True, "rounds": rounds, "warmup_rounds": warmup,
        "client": "httpx.Client, one keep-alive connection, sequential, in the benchmark process",
        "baseline": {"request": "GET /api/v1/me", "ms": baseline},
        "queries": queries,
        "overall_ms": overall,
        "overall_p95_over_baseline_p95": overall["p95"] / baseline["p95"],
        "worst_query_p95_ms": worst,
        "detail": {"request": "GET /api/v1/work-orders/{random id}",
                   "ms": spread(detail.seconds, 1000), "errors": dict(detail.errors)},
        "target": f"every list query's p95 ≤ {LIST_P95_TARGET_MS:g} ms",
        "pass": worst <= LIST_P95_TARGET_MS and not any(q["errors"] for q in queries.values()),
    }  # fmt: skip
