"""Dedup before and after issue 18, on alert streams the project's own edge logic makes.

Issue 18 found that one problem became several work orders when data came late, when a
condition held silently, when two cameras saw one car, and that a vendor back every evening
was one order reopened daily. This script makes recordings that contain each of those, and
replays each with ``citywatch stream replay`` twice, in the same run: as of git ``--before``
(default: the commit before the issue's first change; its code and its demo config,
extracted with ``git archive``) and as of the working tree. The recordings (seeded, written
to a temporary folder, or ``--keep DIR``; never kept in git):

- **storm**: the demo district's waterlogging sensors, each with a twin 40 m away on another
  gateway that the same flood reaches 75 min later, through four storms three days apart
  (20 min rise, 3 h held at 35 cm, 30 min drain), sampled every 10 s through the gateway's
  own :class:`SensorLogic` (levels, hysteresis, refreshes, rate of rise); the first gateway
  goes offline for 45 min to 2 h at a different point of each storm: what it saw then
  arrives at reconnect, late, in its own order. Truth: one work order per flooded spot (a
  sensor and its twin) per storm.
- **storm, changes only**: the same storms from gateways that send level changes only
  (``update_every: null``, as every gateway did before the issue): a flood held for hours at
  one level is silent.
- **street**: cars each seen by two cameras 20–60 m away, each camera projecting the car with
  ±3 m noise at every one-minute refresh for 40 min; vendors back at the same spot on three
  evenings, two hours each. Truth: one order per car; one case per vendor per evening.

For each it prints the work orders against the truth, per kind (split: more orders than
problems; joined: fewer, problems counted as one), the orders reopened and those linked as a
recurrence (复发)::

    .venv/bin/python -m benchmarks.dedup_replay [--before REV] [--cars 60] [--vendors 8]
        [--seed 7] [--keep DIR]

Writes benchmarks/results/dedup_replay.json.
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    console,
    extract_at,
    parser,
    reproduce,
    run_facts,
    save,
    say,
    table,
)
from citywatch.config import load_config
from citywatch.config.sensor import LevelPolicy, SensorConfig, SimulatedRain
from citywatch.contracts import Alert, AlertKind, DeviceKind, DeviceRef, Location, Phase, encode
from citywatch.edge.sensor.logic import SensorLogic
from citywatch.hardware.water.sim import SimulatedWaterSensor

REPO = Path(__file__).resolve().parents[1]
BEFORE = "c5a15b7^"  # the commit before issue 18's first change
CONFIG = "configs/demo-district.yaml"
T0 = datetime(2026, 7, 1, 6, 0, tzinfo=UTC)
STORMS = 4
STORM_EVERY = timedelta(days=3)
SAMPLE_S = 10
MINUTE = timedelta(minutes=1)
OUTAGES = ((0 * MINUTE, 45 * MINUTE), (5 * MINUTE, 120 * MINUTE), (40 * MINUTE, 45 * MINUTE), (150 * MINUTE, 45 * MINUTE))  # fmt: skip
"""When the first gateway goes offline in each storm (after the storm's start), and for how
long: through the first sensor's start, through its whole rise, in the plateau, at the end."""
TWIN_LATER = 75 * MINUTE
"""The twin is the lower end of the same flood: the water reaches it this much later."""
ARRIVAL_LAG = timedelta(seconds=1)
M_PER_DEG = 111_320.0
STREET = (31.4300, 119.4800)
# Where each engine is imported from: the extracted tree's top-level folders are the
# subpackages of the one ``citywatch`` distribution (pyproject's package-dir).
STAGES = ("hardware", "models", "edge", "stream", "center")


@dataclass(frozen=True)
class Recording:
    """One stream as published: (arrival time, alert) in arrival order, and its truth."""

    name: str
    arrivals: list[tuple[datetime, Alert]]
    problems: dict[AlertKind, int]
    what: str

    def write(self, folder: Path) -> Path:
        path = folder / f"{self.name}.jsonl"
        with path.open("wb") as out:
            for _, alert in self.arrivals:
                out.write(encode(alert) + b"\n")
        return path


# -- the recordings -------------------------------------------------------------------------------
def storm_recording(update_every: timedelta | None, name: str) -> Recording:
    """The demo sensors through :data:`STORMS` storms, their gateway offline in each."""
    config = load_config(REPO / CONFIG)
    sensors = config.devices.sensors
    rain = SimulatedRain(
        start_after=timedelta(minutes=1), rise=timedelta(minutes=20), plateau=timedelta(hours=3),
        drain=timedelta(minutes=30), peak_depth_cm=35, noise_cm=0.5,
    )  # fmt: skip
    arrivals: list[tuple[datetime, Alert]] = []
    for storm in range(STORMS):
        start = T0 + storm * STORM_EVERY
        after, lasting = OUTAGES[storm % len(OUTAGES)]
        offline = (start + after, start + after + lasting)
        for index, (sensor, later, gone) in enumerate(
            [(s, timedelta(0), offline) for s in sensors]
            + [(twin(s), TWIN_LATER, (start, start)) for s in sensors]  # its gateway stays up
        ):
            policy = LevelPolicy(
                levels=(sensor.level_policy or config.waterlogging.level_policy).levels,
                update_every=update_every,
            )
            logic = SensorLogic(config.site.id, sensor, policy, started_at=start)
            wet = rain.model_copy(update={"start_after": rain.start_after + later})
            simulated = SimulatedWaterSensor(sensor.mount_height_cm, wet, seed=100 * storm + index)
            for step in range(int(timedelta(hours=6).total_seconds() // SAMPLE_S)):
                time = start + timedelta(seconds=step * SAMPLE_S)
                reading = simulated.sample(time, step * SAMPLE_S)
                messages = logic.observe(reading) if reading is not None else []
                for alert in (m for m in messages if isinstance(m, Alert)):
                    held = gone[0] <= time < gone[1]
                    arrivals.append((gone[1] if held else time + ARRIVAL_LAG, alert))
    arrivals.sort(key=lambda pair: (pair[0], pair[1].event_time))
    return Recording(
        name, arrivals, problems={AlertKind.WATERLOGGING: STORMS * len(sensors)},
        what=f"{len(sensors)} sensors, each with a twin 40 m away on another gateway flooding"
        f" 75 min later, × {STORMS} storms held 3 h; the first gateway offline 45 min–2 h",
    )  # fmt: skip


def twin(sensor: SensorConfig) -> SensorConfig:
    """A second unit 40 m north of ``sensor`` on another gateway (one flood, two sensors)."""
    position = sensor.placement.position
    assert position is not None, f"demo sensor {sensor.id} has no position"
    lat, lon = beside(position.lat, position.lon, 40, 0)
    placement = sensor.placement.model_copy(
        update={"position": position.model_copy(update={"lat": lat, "lon": lon})}
    )
    return sensor.model_copy(
        update={"id": f"{sensor.id}-twin", "gateway": "gw-sensors-west", "placement": placement}
    )


def beside(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    return lat + north_m / M_PER_DEG, lon + east_m / (M_PER_DEG * math.cos(math.radians(lat)))


class _Street:
    """Camera alerts as a camera gateway publishes them (start, a refresh a minute, end)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.arrivals: list[tuple[datetime, Alert]] = []

    def episode(
        self, camera: str, kind: AlertKind, spot: tuple[float, float], start: datetime,
        minutes: int, noise_m: float,
    ) -> None:  # fmt: skip
        episode = f"{camera}.{kind.value}.{int(start.timestamp())}"
        for seq in range(minutes + 1):
            phase = Phase.START if seq == 0 else Phase.END if seq == minutes else Phase.UPDATE
            lat, lon = beside(*spot, self.rng.gauss(0, noise_m), self.rng.gauss(0, noise_m))
            time = start + timedelta(minutes=seq)
            alert = Alert(
                id=f"{episode}.{seq}", episode_id=episode, seq=seq,
                device=DeviceRef(site="demo", kind=DeviceKind.CAMERA, id=camera), kind=kind,
                rule=kind.value, phase=phase, event_time=time,
                location=Location(zone="kerb", lat=round(lat, 7), lon=round(lon, 7)),
                confidence=0.8, dwell_s=60.0 * seq if kind is AlertKind.ILLEGAL_PARKING else None,
            )  # fmt: skip
            self.arrivals.append((time + ARRIVAL_LAG, alert))


def street_recording(cars: int, vendors: int, seed: int) -> Recording:
    """Cars seen by two cameras each; vendors back on three evenings."""
    rng = random.Random(seed)
    street = _Street(rng)
    for car in range(cars):
        spot = beside(*STREET, rng.uniform(-3000, 3000), rng.uniform(-3000, 3000))
        start = T0 + timedelta(minutes=7 * car)
        for camera in range(2):
            # each camera's projection is off by its own few metres (calibration), plus noise
            bias = beside(*spot, rng.gauss(0, 3), rng.gauss(0, 3))
            lag = timedelta(seconds=rng.uniform(0, 90))
            street.episode(f"cam-{car}-{camera}", AlertKind.ILLEGAL_PARKING, bias, start + lag, 40, 3.0)  # fmt: skip
    for vendor in range(vendors):
        spot = beside(*STREET, rng.uniform(-3000, 3000), rng.uniform(-3000, 3000))
        for evening in range(3):
            start = T0 + timedelta(days=evening, hours=12, minutes=rng.uniform(0, 30))
            street.episode(f"cam-v{vendor}", AlertKind.STREET_VENDING, spot, start, 120, 2.0)
    street.arrivals.sort(key=lambda pair: (pair[0], pair[1].event_time))
    return Recording(
        "street", street.arrivals,
        problems={AlertKind.ILLEGAL_PARKING: cars, AlertKind.STREET_VENDING: 3 * vendors},
        what=f"{cars} cars × 2 cameras (±3 m), {vendors} vendors × 3 evenings",
    )  # fmt: skip


# -- the replays ----------------------------------------------------------------------------------
def tree_at(revision: str, into: Path) -> Path:
    """The code and configs of ``revision``, importable as ``citywatch`` from ``into``."""
    extract_at(revision, into, "citywatch", "configs", *STAGES)
    for stage in STAGES:
        (into / "citywatch" / stage).symlink_to(into / stage, target_is_directory=True)
    return into


def replay(
    root: Path, recording: Path, out: Path, problems: dict[AlertKind, int]
) -> dict[str, Any]:
    """``citywatch stream replay`` of the code under ``root`` (with its own demo config)."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-m", "citywatch.cli.main", "stream", "replay", "--alerts",
         str(recording), "--out", str(out), "--config", str(root / CONFIG)],
        cwd=root, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"replay under {root} failed:\n{done.stderr[-2000:]}")
    orders = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    by_kind = Counter(AlertKind(o["kind"]) for o in orders)
    return {
        "work_orders": len(orders),
        # per kind: more orders than problems is a split, fewer is problems counted as one
        "split": sum(max(0, by_kind[k] - n) for k, n in problems.items()),
        "joined": sum(max(0, n - by_kind[k]) for k, n in problems.items()),
        "reopened": sum(o.get("reopen_count", 0) > 0 for o in orders),
        "linked": sum(o.get("recurrence_of") is not None for o in orders),
    }


def runs(
    recordings: list[Recording], trees: dict[str, Path], folder: Path
) -> Iterator[dict[str, Any]]:
    for recording in recordings:
        path = recording.write(folder)
        for side, root in trees.items():
            say(f"… {recording.name}: replaying as of {side}")
            orders = folder / f"{recording.name}.{side.split()[0]}.orders.jsonl"
            counts = replay(root, path, orders, recording.problems)
            yield {
                "recording": recording.name, "what": recording.what, "code": side,
                "alerts": len(recording.arrivals), "problems": sum(recording.problems.values()),
                **counts,
            }  # fmt: skip


def main(argv: list[str]) -> None:
    parse = parser(__doc__ or "", "default benchmarks/results/dedup_replay.json")
    parse.add_argument("--before", default=BEFORE, metavar="REV", help="the code to compare with")
    parse.add_argument("--cars", type=int, default=60)
    parse.add_argument("--vendors", type=int, default=8)
    parse.add_argument("--seed", type=int, default=7)
    parse.add_argument("--keep", type=Path, default=None, help="keep the recordings here")
    args = parse.parse_args(argv)
    say("making the recordings with the project's own sensor logic and camera alerts …")
    recordings = [
        storm_recording(timedelta(minutes=15), "storm"),
        storm_recording(None, "storm-changes-only"),
        street_recording(args.cars, args.vendors, args.seed),
    ]
    with tempfile.TemporaryDirectory(prefix="citywatch-dedup-replay-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        trees = {f"before ({args.before})": tree_at(args.before, Path(tmp) / "before"), "now": REPO}
        rows = list(runs(recordings, trees, folder))
    say("")
    console.print(table(
        "Dedup replay: work orders against the problems in each recording",
        ["recording", "code", "alerts", "problems", "work orders", "split", "joined", "reopened", "linked (复发)"],
        [[str(r[key]) for key in ("recording", "code", "alerts", "problems", "work_orders",
                                  "split", "joined", "reopened", "linked")] for r in rows],
        left={"recording", "code"},
    ))  # fmt: skip
    for recording in recordings:
        say(f"  {recording.name}: {recording.what}")
    command = reproduce("dedup_replay", argv)
    say(f"reproduce: {command}")
    save({**run_facts("dedup_replay", command), "rows": rows}, args.out, "dedup_replay")


if __name__ == "__main__":
    main(sys.argv[1:])
