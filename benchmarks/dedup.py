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

    .venv/bin/python -m benchmarks.dedup [--alerts 100000] [--open 10000] [--repeat 3]
        [--linear 5000]

Prints a table and writes benchmarks/results/dedup.json.
"""

from __future__ import annotations

import math
import os
import random
import statistics
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

from benchmarks.harness import (
    console,
    counted_progress,
    parser,
    reproduce,
    run_facts,
    save,
    say,
    table,
    timed,
)
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
CENTER = Position(31.4300, 119.4800)
HALF_SIDE_M = 10_000.0
T0 = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
STEP = timedelta(milliseconds=30)  # event time between consecutive alerts
EXPIRE_EVERY = 1_000

MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)
POLICIES = {
    AlertKind.ILLEGAL_PARKING: DedupPolicy(radius_m=15, window=30 * MINUTE),
    AlertKind.STREET_VENDING: DedupPolicy(radius_m=30, window=HOUR),
    AlertKind.SMOKE: DedupPolicy(radius_m=300, window=30 * MINUTE, quiet=15 * MINUTE),
    AlertKind.WATERLOGGING: DedupPolicy(radius_m=100, window=HOUR, quiet=20 * MINUTE),
    AlertKind.DEVICE_FAULT: DedupPolicy(radius_m=1, window=HOUR),
}
KIND_MIX = {AlertKind.ILLEGAL_PARKING: 0.6, AlertKind.STREET_VENDING: 0.25,
            AlertKind.WATERLOGGING: 0.1, AlertKind.SMOKE: 0.05}  # fmt: skip
DEVICE_KIND = {AlertKind.ILLEGAL_PARKING: DeviceKind.CAMERA,
               AlertKind.STREET_VENDING: DeviceKind.CAMERA,
               AlertKind.WATERLOGGING: DeviceKind.SENSOR, AlertKind.SMOKE: DeviceKind.DOCK}  # fmt: skip


@dataclass
class Workload:
    """The alerts of one run, built before any timing."""

    warmup: list[tuple[Alert, Position]]  # starts that open the incidents held at the start
    stream: list[tuple[Alert, Position]]  # what is measured
    blobs: list[bytes]  # the stream as published (for the decode baseline)


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
            id=f"a{self.count}", episode_id=episode, seq=self.count,
            device=DeviceRef(site="bench", kind=DEVICE_KIND[kind], id=device), kind=kind,
            rule="rule", phase=phase, event_time=self.time, location=Location(zone="z"),
            confidence=round(self.rng.random(), 2),
            attributes={"depth_cm": round(self.rng.uniform(5, 40), 1)}
            if kind is AlertKind.WATERLOGGING else {},
        )  # fmt: skip


def build_workload(
    open_target: int, n_alerts: int, seed: int, tick: Callable[[], None]
) -> Workload:
    rng = random.Random(seed)
    make = _Builder(rng)
    kinds, weights = list(KIND_MIX), list(KIND_MIX.values())
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


def engine_pass(engine: DedupEngine, stream: Sequence[tuple[Alert, Position]]) -> tuple[int, int]:
    """How many alerts of the stream created or merged into incidents (the timer's
    ``expire(now)`` every :data:`EXPIRE_EVERY` alerts included)."""
    add, expire = engine.add, engine.expire
    created = merged = 0
    for n, (alert, where) in enumerate(stream, start=1):
        result = add(alert, where)
        created += result.created
        merged += result.merged
        if n % EXPIRE_EVERY == 0:
            expire(alert.event_time)
    return created, merged


def decode_all(blobs: list[bytes]) -> None:
    for blob in blobs:
        decode(blob, Alert)


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


def linear_pass(naive: LinearScan, stream: Sequence[tuple[Alert, Position]]) -> tuple[int, int]:
    """The linear scan's (created, merged) over the stream."""
    created = merged = 0
    for alert, where in stream:
        c, m = naive.add(alert, where)
        created += c
        merged += m
    return created, merged


@dataclass
class Measurement:
    """One run over the stream (or its first alerts): a row of the table."""

    name: str
    alerts: int
    seconds: float

    @property
    def per_s(self) -> float:
        return self.alerts / self.seconds


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    options = parser(__doc__ or "", "default benchmarks/results/dedup.json")
    options.add_argument("--alerts", type=int, default=100_000, help="alerts in the stream")
    options.add_argument("--open", type=int, default=10_000, help="open incidents at the start")
    options.add_argument("--repeat", type=int, default=3, help="engine and decode passes")
    options.add_argument("--linear", type=int, default=5_000, help="alerts for the linear scan")
    options.add_argument("--seed", type=int, default=5)
    args = options.parse_args(argv)
    cpu = pin_to_one_core()
    engine_runs: list[float] = []
    decode_runs: list[float] = []
    with counted_progress() as progress:
        build = progress.add_task("building the alert stream", total=args.alerts)
        workload = build_workload(
            args.open, args.alerts, args.seed, lambda: progress.advance(build)
        )
        passes = progress.add_task("engine and decode passes", total=2 * args.repeat)
        for _ in range(args.repeat):
            engine = warmed_engine(workload)
            open_at_start = len(engine.open_incidents())
            seconds, (created, merged) = timed(partial(engine_pass, engine, workload.stream))
            open_at_end = len(engine.open_incidents())
            engine_runs.append(seconds)
            decode_runs.append(timed(lambda: decode_all(workload.blobs))[0])
            progress.advance(passes, 2)
        linear_task = progress.add_task("linear-scan baseline", total=1)
        first = workload.stream[: args.linear]
        naive = LinearScan(workload.warmup)
        linear_s, linear_counts = timed(lambda: linear_pass(naive, first))
        engine = warmed_engine(workload)
        check_s, check_counts = timed(lambda: engine_pass(engine, first))
        progress.advance(linear_task)

    n = len(workload.stream)
    runs = [
        Measurement("dedup engine (grid index)", n, statistics.median(engine_runs)),
        Measurement("baseline: decode only", n, statistics.median(decode_runs)),
        Measurement("baseline: linear scan", len(first), linear_s),
    ]
    engine_rate = runs[0].per_s
    agree = linear_counts == check_counts
    console.print(table(
        f"dedup core: {open_at_start:,} open incidents at the start, one core (cpu {cpu})",
        ("run", "alerts", "median s", "alerts/s", "µs/alert", "engine ×"),
        [(m.name, f"{m.alerts:,}", f"{m.seconds:.3f}", f"{m.per_s:,.0f}", f"{1e6 / m.per_s:.2f}",
          f"{engine_rate / m.per_s:.2f}") for m in runs],
    ))  # fmt: skip
    passed = engine_rate >= TARGET_ALERTS_PER_S
    say(f"{'[green]meets' if passed else '[red]misses'}[/] the target of"
        f" {TARGET_ALERTS_PER_S:,} alerts/s; open incidents {open_at_start:,} → {open_at_end:,};"
        f" linear scan agrees with the engine on its {len(first):,} alerts: {agree}")  # fmt: skip
    results = run_facts("dedup", reproduce("dedup", argv)) | {
        "cpu_pinned": cpu, "seed": args.seed, "open_incidents_at_start": open_at_start,
        "open_incidents_at_end": open_at_end, "expire_every_alerts": EXPIRE_EVERY,
        "target_alerts_per_s": TARGET_ALERTS_PER_S, "meets_target": passed,
        "runs": [{"name": m.name, "alerts": m.alerts, "seconds": round(m.seconds, 4),
                  "alerts_per_s": round(m.per_s), "engine_speedup": round(engine_rate / m.per_s, 2)}
                 for m in runs],
        "engine_seconds_each_pass": [round(s, 4) for s in engine_runs],
        "decode_seconds_each_pass": [round(s, 4) for s in decode_runs],
        "stream": {"alerts": n, "created": created, "merged": merged,
                   "duplicates": n - created - merged},
        "linear_scan_check": {"alerts": len(first), "engine": check_counts,
                              "linear": linear_counts, "agree": agree,
                              "engine_seconds": round(check_s, 4)},
    }  # fmt: skip
    save(results, args.out, "dedup")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
