"""Benchmark of the dedup core: alerts/s with 10,000 open incidents, on one core.

The same alert stream goes through, in one run:

- ``DedupEngine`` (grid index), the timer's ``expire(now)`` every 1,000 alerts included;
- baseline "decode only": a bare loop that only decodes the same alerts from their JSON
  (what every consumer pays per message anyway);
- baseline "linear scan": the same merge decisions found by scanning every open incident
  (no spatial index), on the first alerts of the stream only, because it is slow; its
  created/merged counts are checked against the engine's on the same alerts.

The stream (seeded): updates of open episodes, ends, new episodes beside an incident
(merges) and at random places (new incidents), and resends, over a 20 km × 20 km district,
kinds and radii as in the demo config. Target (issue 5): ≥ 50,000 alerts/s.

    .venv/bin/python benchmarks/dedup.py [--alerts 100000] [--open 10000] [--repeat 3]

Prints a table and writes benchmarks/results/dedup.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from citywatch.cli.progress import counted_progress
from citywatch.config.workflow import DedupPolicy
from citywatch.contracts import (
    Alert,
    AlertKind,
    DeviceKind,
    DeviceRef,
    Location,
    Phase,
    decode,
    encode,
)
from citywatch.stream.dedup import M_PER_DEG, DedupEngine, Position, distance_m

TARGET_ALERTS_PER_S = 50_000
RESULTS = Path(__file__).resolve().parent / "results" / "dedup.json"
CENTER = Position(31.4300, 119.4800)
HALF_SIDE_M = 10_000.0
T0 = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
STEP = timedelta(milliseconds=30)  # event time between consecutive alerts
EXPIRE_EVERY = 1_000

POLICIES = {
    AlertKind.ILLEGAL_PARKING: DedupPolicy(radius_m=15, window=timedelta(minutes=30)),
    AlertKind.STREET_VENDING: DedupPolicy(radius_m=30, window=timedelta(hours=1)),
    AlertKind.SMOKE: DedupPolicy(
        radius_m=300, window=timedelta(minutes=30), quiet=timedelta(minutes=15)
    ),
    AlertKind.WATERLOGGING: DedupPolicy(
        radius_m=100, window=timedelta(hours=1), quiet=timedelta(minutes=20)
    ),
    AlertKind.DEVICE_FAULT: DedupPolicy(radius_m=1, window=timedelta(hours=1)),
}
KIND_MIX = [
    (AlertKind.ILLEGAL_PARKING, 0.6),
    (AlertKind.STREET_VENDING, 0.25),
    (AlertKind.WATERLOGGING, 0.1),
    (AlertKind.SMOKE, 0.05),
]
DEVICE_KIND = {
    AlertKind.ILLEGAL_PARKING: DeviceKind.CAMERA,
    AlertKind.STREET_VENDING: DeviceKind.CAMERA,
    AlertKind.WATERLOGGING: DeviceKind.SENSOR,
    AlertKind.SMOKE: DeviceKind.DOCK,
}


@dataclass
class Workload:
    warmup: list[tuple[Alert, Position]]  # starts that open the incidents held at the start
    stream: list[tuple[Alert, Position]]  # what is measured
    blobs: list[bytes]  # the stream as published (for the decode baseline)


@dataclass
class Measurement:
    name: str
    alerts: int
    seconds: float

    @property
    def per_s(self) -> float:
        return self.alerts / self.seconds


def pin_to_one_core() -> int | None:
    """Run on one CPU, as the target says; returns it (None where affinity is unsupported)."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def random_point(rng: random.Random) -> Position:
    north, east = rng.uniform(-HALF_SIDE_M, HALF_SIDE_M), rng.uniform(-HALF_SIDE_M, HALF_SIDE_M)
    return beside(CENTER, north, east)


def beside(origin: Position, north_m: float, east_m: float) -> Position:
    lat = origin.lat + north_m / M_PER_DEG
    return Position(lat, origin.lon + east_m / (M_PER_DEG * math.cos(math.radians(lat))))


class _Builder:
    """Makes the alerts of the workload (validated models, built before any timing)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.count = 0
        self.time = T0

    def alert(self, episode: str, kind: AlertKind, phase: Phase, device: str) -> Alert:
        self.count += 1
        self.time += STEP
        return Alert(
            id=f"a{self.count}",
            episode_id=episode,
            seq=self.count,
            device=DeviceRef(site="bench", kind=DEVICE_KIND[kind], id=device),
            kind=kind,
            rule="rule",
            phase=phase,
            event_time=self.time,
            location=Location(zone="z"),
            confidence=round(self.rng.random(), 2),
            attributes={"depth_cm": round(self.rng.uniform(5, 40), 1)}
            if kind is AlertKind.WATERLOGGING
            else {},
        )


def build_workload(
    open_target: int, n_alerts: int, seed: int, tick: Callable[[], None]
) -> Workload:
    rng = random.Random(seed)
    make = _Builder(rng)
    kinds = [k for k, _ in KIND_MIX]
    weights = [w for _, w in KIND_MIX]
    live: list[tuple[str, AlertKind, Position, str]] = []  # open episodes
    anchors: list[tuple[AlertKind, Position]] = []  # where incidents are

    def start(kind: AlertKind, where: Position) -> tuple[Alert, Position]:
        episode = f"e{make.count + 1}"
        device = f"dev{rng.randrange(5_000)}"
        live.append((episode, kind, where, device))
        anchors.append((kind, where))
        return make.alert(episode, kind, Phase.START, device), where

    # The warm-up opens one incident per start; a probe engine stops it at the target.
    probe = DedupEngine(POLICIES)
    warmup: list[tuple[Alert, Position]] = []
    while len(probe.open_incidents()) < open_target:
        for _ in range(open_target - len(probe.open_incidents())):
            item = start(rng.choices(kinds, weights)[0], random_point(rng))
            probe.add(*item)
            warmup.append(item)
    stream: list[tuple[Alert, Position]] = []
    for _ in range(n_alerts):
        roll = rng.random()
        if roll < 0.10 and stream:  # a resend of something already sent
            stream.append(stream[rng.randrange(len(stream))])
        elif roll < 0.70 and live:  # an update of an open episode
            episode, kind, where, device = live[rng.randrange(len(live))]
            stream.append((make.alert(episode, kind, Phase.UPDATE, device), where))
        elif roll < 0.84 and live:  # an episode ends
            episode, kind, where, device = live.pop(rng.randrange(len(live)))
            stream.append((make.alert(episode, kind, Phase.END, device), where))
        elif roll < 0.95:  # another sighting beside a known incident: a merge
            kind, anchor = anchors[rng.randrange(len(anchors))]
            reach = 0.5 * POLICIES[kind].radius_m
            near = beside(anchor, rng.uniform(-reach, reach), rng.uniform(-reach, reach))
            stream.append(start(kind, near))
        else:  # a new problem somewhere
            stream.append(start(rng.choices(kinds, weights)[0], random_point(rng)))
        tick()
    blobs = [encode(alert) for alert, _ in stream]
    return Workload(warmup, stream, blobs)


def warmed_engine(workload: Workload) -> DedupEngine:
    engine = DedupEngine(POLICIES)
    for alert, where in workload.warmup:
        engine.add(alert, where)
    return engine


def run_engine(engine: DedupEngine, stream: list[tuple[Alert, Position]]) -> tuple[float, int, int]:
    """Seconds for the stream, and how many alerts created or merged into incidents."""
    add, expire = engine.add, engine.expire
    created = merged = 0
    gc.collect()
    started = time.perf_counter()
    for n, (alert, where) in enumerate(stream, start=1):
        result = add(alert, where)
        created += result.created
        merged += result.merged
        if n % EXPIRE_EVERY == 0:
            expire(alert.event_time)
    return time.perf_counter() - started, created, merged


def run_decode(blobs: list[bytes]) -> float:
    gc.collect()
    started = time.perf_counter()
    for blob in blobs:
        decode(blob, Alert)
    return time.perf_counter() - started


@dataclass(slots=True)
class _Row:
    kind: AlertKind
    lat: float
    lon: float
    opened_s: float
    last_s: float


class LinearScan:
    """The naive dedup: every new episode is compared with every open incident."""

    def __init__(self, warmup: Iterable[tuple[Alert, Position]]) -> None:
        self.by_alert: dict[str, int] = {}
        self.by_episode: dict[str, int] = {}
        self.open: list[_Row] = []
        for alert, where in warmup:
            self.add(alert, where)

    def add(self, alert: Alert, where: Position) -> tuple[bool, bool]:
        """(created, merged) for one alert."""
        if alert.id in self.by_alert:
            return False, False
        t = alert.event_time.timestamp()
        index = self.by_episode.get(alert.episode_id)
        created = False
        if index is None:
            policy = POLICIES[alert.kind]
            window, best, best_d = policy.window.total_seconds(), None, math.inf
            for i, row in enumerate(self.open):
                if row.kind is not alert.kind or not (
                    row.opened_s - window <= t <= row.last_s + window
                ):
                    continue
                d = distance_m(where.lat, where.lon, row.lat, row.lon)
                if d <= policy.radius_m and d < best_d:
                    best, best_d = i, d
            if best is None:
                self.open.append(_Row(alert.kind, where.lat, where.lon, t, t))
                best, created = len(self.open) - 1, True
            index = self.by_episode[alert.episode_id] = best
        self.by_alert[alert.id] = index
        row = self.open[index]
        row.last_s = max(row.last_s, t)
        return created, not created


def run_linear(workload: Workload, n: int) -> tuple[float, int, int]:
    naive = LinearScan(workload.warmup)
    created = merged = 0
    gc.collect()
    started = time.perf_counter()
    for alert, where in workload.stream[:n]:
        c, m = naive.add(alert, where)
        created += c
        merged += m
    return time.perf_counter() - started, created, merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alerts", type=int, default=100_000, help="alerts in the stream")
    parser.add_argument("--open", type=int, default=10_000, help="open incidents at the start")
    parser.add_argument("--repeat", type=int, default=3, help="engine and decode passes")
    parser.add_argument("--linear", type=int, default=5_000, help="alerts for the linear scan")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    console = Console()
    cpu = pin_to_one_core()

    engine_runs: list[float] = []
    decode_runs: list[float] = []
    with counted_progress(console) as progress:
        build = progress.add_task("building the alert stream", total=args.alerts)
        workload = build_workload(
            args.open, args.alerts, args.seed, lambda: progress.advance(build)
        )
        passes = progress.add_task("engine and decode passes", total=2 * args.repeat)
        open_at_end = 0
        for _ in range(args.repeat):
            engine = warmed_engine(workload)
            open_at_start = len(engine.open_incidents())
            seconds, created, merged = run_engine(engine, workload.stream)
            open_at_end = len(engine.open_incidents())
            engine_runs.append(seconds)
            progress.advance(passes)
            decode_runs.append(run_decode(workload.blobs))
            progress.advance(passes)
        linear_task = progress.add_task("linear-scan baseline", total=1)
        n_linear = min(args.linear, len(workload.stream))
        linear_s, linear_created, linear_merged = run_linear(workload, n_linear)
        check_s, check_created, check_merged = run_engine(
            warmed_engine(workload), workload.stream[:n_linear]
        )
        progress.advance(linear_task)

    n = len(workload.stream)
    engine_m = Measurement("dedup engine (grid index)", n, statistics.median(engine_runs))
    decode_m = Measurement("baseline: decode only", n, statistics.median(decode_runs))
    linear_m = Measurement("baseline: linear scan", n_linear, linear_s)
    agree = (linear_created, linear_merged) == (check_created, check_merged)

    table = Table(
        title=f"dedup core: {open_at_start:,} open incidents at the start, one core (cpu {cpu})"
    )
    for column in ("run", "alerts", "median s", "alerts/s", "µs/alert", "engine ×"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for m in (engine_m, decode_m, linear_m):
        table.add_row(
            m.name,
            f"{m.alerts:,}",
            f"{m.seconds:.3f}",
            f"{m.per_s:,.0f}",
            f"{1e6 / m.per_s:.2f}",
            f"{engine_m.per_s / m.per_s:.2f}",
        )
    console.print(table)
    passed = engine_m.per_s >= TARGET_ALERTS_PER_S
    verdict = "[green]meets" if passed else "[red]misses"
    console.print(
        f"{verdict}[/] the target of {TARGET_ALERTS_PER_S:,} alerts/s; "
        f"open incidents {open_at_start:,} → {open_at_end:,}; "
        f"linear scan agrees with the engine on its {n_linear:,} alerts: {agree}"
    )

    report = {
        "benchmark": "dedup",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "machine": platform.platform(),
        "cpu_pinned": cpu,
        "seed": args.seed,
        "open_incidents_at_start": open_at_start,
        "open_incidents_at_end": open_at_end,
        "expire_every_alerts": EXPIRE_EVERY,
        "target_alerts_per_s": TARGET_ALERTS_PER_S,
        "meets_target": passed,
        "runs": [
            {
                "name": m.name,
                "alerts": m.alerts,
                "seconds": round(m.seconds, 4),
                "alerts_per_s": round(m.per_s),
                "engine_speedup": round(engine_m.per_s / m.per_s, 2),
            }
            for m in (engine_m, decode_m, linear_m)
        ],
        "engine_seconds_each_pass": [round(s, 4) for s in engine_runs],
        "decode_seconds_each_pass": [round(s, 4) for s in decode_runs],
        "stream": {
            "alerts": n,
            "created": created,
            "merged": merged,
            "duplicates": n - created - merged,
        },
        "linear_scan_check": {
            "alerts": n_linear,
            "engine": [check_created, check_merged],
            "linear": [linear_created, linear_merged],
            "agree": agree,
            "engine_seconds": round(check_s, 4),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    console.print(f"wrote {args.out}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
