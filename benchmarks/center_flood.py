"""Junk-token flood against the command center: does the duty officer still get answers?

Target (issue 17): while 200 requests with junk bearer tokens hit ``GET /api/v1/work-orders``
40 at a time, a valid viewer's requests to the same route keep p99 ≤ 1 s, and nobody — the
viewer or the flood — gets a 5xx or a dropped connection.

Method. A private embedded stack (``benchmarks.private_stack``: the stack's own PostgreSQL,
migrated) is filled with a small site's work orders (``benchmarks.center_data``: the real
state machine). The center (``create_app``) runs under uvicorn in its own process, one
worker, as ``citywatch center serve`` runs it, with one viewer in its config. Same-run
baseline: the viewer alone sends ``--baseline`` requests one after another. Then the flood:
``--concurrency`` clients from 127.0.0.1 share ``--flood`` requests, each with a fresh random
token (none can be answered from a cache of known tokens), while the viewer, from 127.0.0.2
(another client address: the duty officer is not the attacker), sends requests one after
another until the flood is over. Every request has a ``--timeout``; a timeout or a reset
counts as a server fault. The figure is the viewer's p99 during the flood.

``--before REV`` runs the same flood, in the same run and on the same data, against the
center package as it was at git revision REV (extracted with ``git archive``; the rest of
citywatch is today's), for a before/after.

    .venv/bin/python -m benchmarks.center_flood [--flood 200] [--concurrency 40]
        [--work-orders 2000] [--alerts 6000] [--baseline 50] [--before REV]

Prints a table and writes benchmarks/results/center_flood-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from benchmarks.center_data import generate
from benchmarks.harness import (
    DEMO_CONFIG,
    REPO,
    console,
    counted_progress,
    extract_at,
    fmt,
    mark,
    parser,
    reproduce,
    run_facts,
    save,
    say,
    spread,
    table,
)
from benchmarks.private_stack import private_stack
from citywatch.config import CitywatchConfig, load_config
from citywatch.stack.ports import pick_free_port

P99_TARGET_S = 1.0
ROUTE = "/api/v1/work-orders"
VIEWER_ADDRESS = "127.0.0.2"
FLOOD_ADDRESS = "127.0.0.1"


# -- the center, in its own process -------------------------------------------------------------
def bench_config(viewer_sha256: str) -> CitywatchConfig:
    """The demo site with one user, a viewer, whose token is given by its hash."""
    demo = load_config(DEMO_CONFIG)
    user = {"name": "duty-viewer", "role": "viewer", "token_sha256": viewer_sha256}
    center = demo.center.model_dump() | {"users": [user]}
    return CitywatchConfig.model_validate(demo.model_dump() | {"center": center})


def load_center_from(folder: Path) -> None:
    """Make ``citywatch.center`` the package in ``folder`` (an older revision's)."""
    spec = importlib.util.spec_from_file_location(
        "citywatch.center", folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["citywatch.center"] = module
    spec.loader.exec_module(module)


def serve(port: int) -> None:
    """The child process: the center under uvicorn, one worker."""
    import uvicorn

    if os.environ.get("CITYWATCH_BENCH_CENTER_DIR"):
        load_center_from(Path(os.environ["CITYWATCH_BENCH_CENTER_DIR"]))
    from citywatch.center.app import create_app
    from citywatch.center.settings import CenterSettings

    settings = CenterSettings(
        config=bench_config(os.environ["CITYWATCH_BENCH_VIEWER_SHA256"]),
        database_url=os.environ["CITYWATCH_BENCH_DATABASE_URL"], config_dir=DEMO_CONFIG.parent,
    )  # fmt: skip
    uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning")


@contextlib.contextmanager
def center(database_url: str, token: str, log: Path, source: Path | None) -> Iterator[str]:
    """The center in a child process on a free port; yields its URL once /healthz answers."""
    from citywatch.center.auth import hash_token

    port = pick_free_port()
    env = os.environ | {"CITYWATCH_BENCH_DATABASE_URL": database_url,
                        "CITYWATCH_BENCH_VIEWER_SHA256": hash_token(token),
                        "CITYWATCH_BENCH_CENTER_DIR": str(source or "")}  # fmt: skip
    with open(log, "ab") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.center_flood", "--serve", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the center did not start; see {log}:\n{log.read_text()[-2000:]}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        yield url
    finally:
        child.terminate()
        try:
            child.wait(15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(5)


def center_at(revision: str, into: Path) -> Path:
    """The ``center/`` folder of ``revision``, extracted into ``into`` (read-only on git)."""
    return extract_at(revision, into, "center") / "center"


# -- the measurement ----------------------------------------------------------------------------
class Outcomes:
    """Latencies and answers of one client's requests ("error: …" for no answer at all)."""

    def __init__(self) -> None:
        self.latencies_s: list[float] = []
        self.statuses: Counter[str] = Counter()

    async def send(self, client: httpx.AsyncClient, token: str) -> None:
        began = time.perf_counter()
        try:
            response = await client.get(ROUTE, headers={"Authorization": f"Bearer {token}"})
            self.statuses[str(response.status_code)] += 1
        except httpx.HTTPError as exc:
            self.statuses[f"error: {type(exc).__name__}"] += 1
        self.latencies_s.append(time.perf_counter() - began)

    def faults(self) -> int:
        """Answers that are a server fault: 5xx, timeouts, resets."""
        return sum(n for s, n in self.statuses.items() if s.startswith(("5", "error")))

    def summary(self) -> dict[str, Any]:
        return {"latency_ms": spread(self.latencies_s, 1000), "statuses": dict(self.statuses)}


def client_from(address: str, url: str, timeout_s: float, connections: int) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(
        local_address=address, limits=httpx.Limits(max_connections=connections)
    )
    return httpx.AsyncClient(base_url=url, transport=transport, timeout=timeout_s)


async def flood(url: str, token: str, requests: int, concurrency: int, baseline_n: int,
                timeout_s: float) -> dict[str, Any]:  # fmt: skip
    baseline, viewer, junk, after = Outcomes(), Outcomes(), Outcomes(), Outcomes()
    async with (
        client_from(VIEWER_ADDRESS, url, timeout_s, 1) as officer,
        client_from(FLOOD_ADDRESS, url, timeout_s, concurrency) as attacker,
    ):
        for _ in range(baseline_n):
            await baseline.send(officer, token)
        remaining = list(range(requests))
        flooding = True

        async def attack() -> None:
            while remaining:
                remaining.pop()
                await junk.send(attacker, secrets.token_urlsafe(32))

        async def duty() -> None:
            while flooding:
                await viewer.send(officer, token)

        began = time.perf_counter()
        watching = asyncio.create_task(duty())
        await asyncio.gather(*(attack() for _ in range(concurrency)))
        flood_s = time.perf_counter() - began
        flooding = False
        await watching
        await after.send(officer, token)
    p99_s = spread(viewer.latencies_s)["p99"]
    faults = viewer.faults() + junk.faults() + after.faults()
    return {
        "baseline": baseline.summary(),
        "viewer_during_flood": viewer.summary(),
        "flood": junk.summary() | {"seconds": round(flood_s, 2)},
        "viewer_after_flood": after.summary(),
        "viewer_p99_s": p99_s,
        "server_faults": faults,
        "pass": p99_s <= P99_TARGET_S and faults == 0
        and viewer.statuses.get("200", 0) == len(viewer.latencies_s),
    }  # fmt: skip


def report(title: str, run: dict[str, Any]) -> None:
    rows = []
    for who, key in (
        ("viewer alone (baseline)", "baseline"),
        ("viewer during the flood", "viewer_during_flood"),
        (f"junk-token flood ({run['flood']['seconds']} s)", "flood"),
        ("viewer after the flood", "viewer_after_flood"),
    ):
        ms, statuses = run[key]["latency_ms"], run[key]["statuses"]
        answers = ", ".join(f"{s}×{n}" for s, n in sorted(statuses.items()))
        rows.append([who, str(ms["n"]), fmt(ms["p50"]), fmt(ms["p99"]), fmt(ms["max"]), answers])
    columns = ("who", "requests", "p50 ms", "p99 ms", "max ms", "answers")
    say("")
    console.print(table(title, columns, rows, left=("who", "answers")))
    say(f"viewer p99 during the flood {run['viewer_p99_s'] * 1000:.0f} ms (target ≤ 1000 ms),"
        f" server faults (5xx, timeouts, resets) {run['server_faults']} (target 0)")  # fmt: skip
    console.print(f"verdict: {mark(run['pass'])}")


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    parse = parser(__doc__ or "", "default: benchmarks/results/center_flood-<time>.json")
    parse.add_argument("--flood", type=int, default=200, help="junk-token requests")
    parse.add_argument("--concurrency", type=int, default=40, help="junk requests at once")
    parse.add_argument("--baseline", type=int, default=50, help="viewer requests alone first")
    parse.add_argument("--work-orders", type=int, default=2000)
    parse.add_argument("--alerts", type=int, default=6000)
    parse.add_argument("--seed", type=int, default=17)
    parse.add_argument("--timeout", type=float, default=120.0, help="per request, seconds")
    parse.add_argument("--before", metavar="REV", help="also flood the center as of git REV")
    parse.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the child process
    args = parse.parse_args(args_in)
    if args.serve:
        serve(args.serve)
        return 0
    command = reproduce("center_flood", args_in)
    results = run_facts("center_flood", command)
    token = secrets.token_urlsafe(32)
    with private_stack() as stack, tempfile.TemporaryDirectory() as tmp:
        url = stack.endpoints.database_url
        results["postgres"] = stack.postgres_facts()
        with counted_progress() as progress:
            results["data"] = generate(url, load_config(DEMO_CONFIG), args.work_orders,
                                       args.alerts, args.seed, progress)  # fmt: skip
        runs = [("now", None)]
        if args.before:
            runs.insert(0, (args.before, center_at(args.before, Path(tmp))))
        for name, source in runs:
            with center(url, token, Path(tmp) / f"center-{name}.log", source) as base:
                results[f"center_{name}" if source is None else "center_before"] = asyncio.run(
                    flood(base, token, args.flood, args.concurrency, args.baseline, args.timeout)
                ) | {"revision": name}
    if args.before:
        report(f"center as of {args.before} (before)", results["center_before"])
    report(f"GET {ROUTE} during a junk-token flood: the center now", results["center_now"])
    results["pass"] = results["center_now"]["pass"]
    save(results, args.out, "center_flood", stamped=True)
    return 0 if results["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
