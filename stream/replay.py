"""Offline replay: recorded alert messages in, the work orders dedup makes of them out.

An operator back-tests a dedup policy on last week's alerts with the same core the live app
runs (``citywatch.stream.dedup``). Lines are the messages exactly as published, in arrival
order; they are released to the engine in event-time order within the lateness the app
tolerates, so any arrival order within that lateness gives the same work orders, and a
replay of one file always gives the same incident ids. A line that is not a valid alert is
counted with its line number and skipped, never fatal.
"""

from __future__ import annotations

import argparse
import heapq
import json
import logging
import random
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from citywatch.config import CitywatchConfig
from citywatch.config.workflow import Workflow
from citywatch.contracts import Alert, ContractError, decode
from citywatch.stream.dedup import DEFAULT_LATENESS, DedupEngine, Incident, alert_position
from citywatch.workorder.priority import priority, route

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BadLine:
    """A line of the input that is not a valid alert message, and why."""

    line: int
    error: str


@dataclass(frozen=True)
class ReplaySummary:
    """What a replay read and wrote."""

    lines: int  # non-blank lines read
    alerts: int  # valid alert messages, duplicates included
    duplicates: int  # resends of an alert id already seen
    late: int  # alerts that arrived after the lateness had passed for them
    unpositioned: int  # alerts with no position of their own or their device's (per device)
    bad_lines: tuple[BadLine, ...]
    incidents: int
    open: int
    closed: int
    reopened: int  # incidents reopened at least once
    out_path: Path
    linked: int = 0  # incidents opened as a recurrence (复发) of an earlier one (new_linked)
    folded: int = 0  # incidents late data showed to be part of another, folded into it


class ReorderBuffer:
    """Releases alerts in event-time order once ``lateness`` has passed for them.

    The stream's time is the latest event time seen; an alert is released when it is at
    least ``lateness`` older than that (ties keep arrival order). An alert already older
    than that on arrival is released at once, and counted as late.
    """

    def __init__(self, lateness: timedelta = DEFAULT_LATENESS) -> None:
        self._lateness_s = lateness.total_seconds()
        self._heap: list[tuple[float, int, Alert]] = []
        self._arrivals = 0
        self._latest = float("-inf")
        self.late = 0

    def push(self, alert: Alert) -> list[Alert]:
        """Take one arrival; return the alerts it releases, oldest first."""
        t = alert.event_time.timestamp()
        if t <= self._latest - self._lateness_s:
            self.late += 1
        self._latest = max(self._latest, t)
        heapq.heappush(self._heap, (t, self._arrivals, alert))
        self._arrivals += 1
        watermark = self._latest - self._lateness_s
        released = []
        while self._heap and self._heap[0][0] <= watermark:
            released.append(heapq.heappop(self._heap)[2])
        return released

    def drain(self) -> list[Alert]:
        """Everything still held, oldest first (the end of the input)."""
        held = [heapq.heappop(self._heap)[2] for _ in range(len(self._heap))]
        return held


def read_alerts(path: Path, bad: list[BadLine]) -> Iterator[Alert]:
    """The valid alerts of a JSONL file in file order; each bad line goes to ``bad``."""
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                yield decode(line, Alert)
            except ContractError as exc:
                bad.append(BadLine(number, f"{type(exc).__name__}: {exc}"))
                log.warning("skipping line %d of %s: %s: %s", number, path, type(exc).__name__, exc)


def work_order_line(incident: Incident, workflow: Workflow | None = None) -> dict[str, object]:
    """One output record: the work order an incident becomes, with its alerts.

    With the site's ``workflow`` it also names the category, owning department and
    priority the live app would give it (the work order id is the incident id there too).
    """
    position = incident.position
    routing: dict[str, object] = {}
    if workflow is not None:
        route_ = route(workflow, incident.kind)
        routing = {
            "work_order_id": incident.id,
            "category": route_.category_code,
            "department": route_.department,
            "sla_tier": route_.sla_tier.id,
            "priority": priority(
                incident.kind,
                max_confidence=incident.max_confidence,
                depth_level=incident.level,
                sources=len(incident.sources),
            ),
        }
    return {
        **routing,
        "incident_id": incident.id,
        "kind": incident.kind.value,
        "state": incident.state,
        "opened_at": incident.opened_at.isoformat(),
        "closed_at": incident.closed_at.isoformat() if incident.closed_at else None,
        "position": {"lat": position.lat, "lon": position.lon} if position else None,
        "alert_ids": list(incident.alert_ids),
        "sources": sorted(incident.sources),
        "reopen_count": incident.reopen_count,
        "recurrence_of": incident.recurrence_of,
    }


@dataclass
class DedupRun:
    """What the engine made of one arrival order of alerts."""

    incidents: dict[str, Incident]
    alerts: int = 0
    duplicates: int = 0
    unpositioned: int = 0
    late: int = 0
    folded: int = 0

    def work_orders(self) -> list[Incident]:
        """The incidents that are work orders (folded ones handed theirs over), oldest first."""
        live = (inc for inc in self.incidents.values() if inc.merged_into is None)
        return sorted(live, key=lambda inc: (inc.opened_at, inc.id))

    def partition(self) -> set[frozenset[str]]:
        """The alert ids grouped by work order: what must not depend on arrival order."""
        return {frozenset(inc.alert_ids) for inc in self.work_orders()}


def dedup_stream(
    config: CitywatchConfig,
    arrivals: Iterable[Alert],
    lateness: timedelta = DEFAULT_LATENESS,
    delays: Mapping[str, timedelta] | None = None,
) -> DedupRun:
    """Run the live app's dedup over alerts in arrival order: released in event-time order
    within ``lateness``, late data folded as the live worker does, the timer at each alert's
    arrival (its event time, plus its device's delay from ``delays`` by device id)."""
    delay_of = delays or {}
    engine = DedupEngine(config.workflow.dedup, lateness)
    placements = config.placements()
    buffer = ReorderBuffer(lateness)
    run = DedupRun({})
    latest: datetime | None = None

    def feed(alert: Alert) -> None:
        # The live app's timer, at arrival: close what ended before this alert came.
        engine.expire(alert.event_time + delay_of.get(alert.device.id, timedelta(0)) + lateness)
        position = alert_position(alert, placements)
        run.unpositioned += position is None
        result = engine.add(alert, position)
        run.duplicates += result.duplicate
        run.folded += len(result.absorbed)
        run.incidents[result.incident.id] = result.incident

    for alert in arrivals:
        run.alerts += 1
        latest = alert.event_time if latest is None else max(latest, alert.event_time)
        for ready in buffer.push(alert):
            feed(ready)
    for ready in buffer.drain():
        feed(ready)
    if latest is not None:
        engine.expire(latest + lateness)  # what is still open at the end of the file stays open
    run.late = buffer.late
    return run


def replay(
    config: CitywatchConfig,
    alerts_path: Path,
    out_path: Path,
    *,
    lateness: timedelta = DEFAULT_LATENESS,
) -> ReplaySummary:
    """Dedup the alerts of ``alerts_path`` as the live app would; write the work orders
    (one JSON line per incident, oldest first) to ``out_path``."""
    bad: list[BadLine] = []
    run = dedup_stream(config, read_alerts(alerts_path, bad), lateness)
    alerts = run.alerts
    ordered = run.work_orders()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with out_path.open("w", encoding="utf-8") as out:
        for incident in ordered:
            out.write(
                json.dumps(work_order_line(incident, config.workflow), ensure_ascii=False) + "\n"
            )
    summary = ReplaySummary(
        lines=alerts + len(bad),
        alerts=alerts,
        duplicates=run.duplicates,
        late=run.late,
        unpositioned=run.unpositioned,
        bad_lines=tuple(bad),
        incidents=len(ordered),
        open=sum(inc.state == "open" for inc in ordered),
        closed=sum(inc.state == "closed" for inc in ordered),
        reopened=sum(inc.reopen_count > 0 for inc in ordered),
        out_path=out_path,
        linked=sum(inc.recurrence_of is not None for inc in ordered),
        folded=run.folded,
    )
    log.info(
        "replayed %d alerts from %s: %d incidents (%d open), %d bad lines",
        alerts,
        alerts_path,
        summary.incidents,
        summary.open,
        len(bad),
    )
    return summary


@dataclass(frozen=True)
class OrderCheck:
    """Whether one arrival order of a file's alerts gives the work orders of event-time order."""

    in_order: int  # work orders when every alert arrives at its event time
    perturbed: int  # work orders in the arrival order checked
    split: int  # in-order work orders whose alerts ended in more than one
    joined: int  # work orders that hold alerts of more than one in-order work order

    @property
    def same(self) -> bool:
        return self.split == 0 and self.joined == 0


def arrival_order(
    alerts: Sequence[Alert],
    *,
    seed: int | None = None,
    within: timedelta = DEFAULT_LATENESS,
    delays: Mapping[str, timedelta] | None = None,
) -> list[Alert]:
    """The alerts as they might arrive: each device's delayed by ``delays`` (by device id:
    a gateway back from an outage, its own order kept), and with a ``seed`` each alert
    further by a random time under ``within`` (network jitter)."""
    rng = random.Random(seed)
    delay_of = delays or {}

    def arrival(n: int) -> tuple[datetime, int]:
        alert = alerts[n]
        jitter = rng.uniform(0, within.total_seconds()) if seed is not None else 0.0
        delay = delay_of.get(alert.device.id, timedelta(0)) + timedelta(seconds=jitter)
        return alert.event_time + delay, n

    times = [arrival(n) for n in range(len(alerts))]
    return [alerts[n] for _, n in sorted(times)]


def check_order(
    config: CitywatchConfig,
    alerts: Sequence[Alert],
    *,
    seed: int | None = None,
    delays: Mapping[str, timedelta] | None = None,
    lateness: timedelta = DEFAULT_LATENESS,
) -> OrderCheck:
    """Dedup ``alerts`` in event-time order and in the arrival order ``seed`` and ``delays``
    make (:func:`arrival_order`, jitter within ``lateness``); compare the partitions."""
    ordered = sorted(alerts, key=lambda a: a.event_time)
    expected = dedup_stream(config, ordered, lateness).partition()
    arrivals = arrival_order(alerts, seed=seed, within=lateness, delays=delays)
    got = dedup_stream(config, arrivals, lateness, delays).partition()
    home = {alert_id: group for group in got for alert_id in group}
    split = sum(len({home[a] for a in group}) > 1 for group in expected)
    joined = sum(sum(bool(group & old) for old in expected) > 1 for group in got)
    return OrderCheck(len(expected), len(got), split, joined)


def parse_delay(text: str) -> tuple[str, timedelta]:
    """``DEVICE:MINUTES`` (``--delay``) as (device id, delay); a clear error otherwise."""
    device, sep, minutes = text.rpartition(":")
    try:
        delay = timedelta(minutes=float(minutes))
    except ValueError:
        delay = None
    if not sep or not device or delay is None or delay < timedelta(0):
        raise ValueError(f"--delay {text!r}: give DEVICE:MINUTES, e.g. wl-underpass-01:45")
    return device, delay


def order_check_line(check: OrderCheck, seed: int | None, delays: Mapping[str, timedelta]) -> str:
    """The one-line report of :func:`check_order`."""
    how = [f"shuffle seed {seed}"] if seed is not None else []
    how += [f"{device} {delay.total_seconds() / 60:g} min late" for device, delay in delays.items()]
    verdict = (
        "same work orders"
        if check.same
        else f"DIFFERENT work orders ({check.split} split, {check.joined} joined)"
    )
    return (
        f"order check ({', '.join(how)}): {check.in_order} work orders in event-time order, "
        f"{check.perturbed} in that arrival order: {verdict}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m citywatch.stream.replay --config FILE --alerts IN --out OUT`` (the real
    command is ``citywatch stream replay``)."""
    from citywatch.config import ConfigError, load_config

    parser = argparse.ArgumentParser(prog="citywatch stream replay", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="site config YAML")
    parser.add_argument("--alerts", type=Path, required=True, help="alert messages, JSONL")
    parser.add_argument("--out", type=Path, required=True, help="work orders, JSONL")
    parser.add_argument("--shuffle", type=int, metavar="SEED", help="check a random arrival order")
    parser.add_argument(
        "--delay", action="append", default=[], metavar="DEVICE:MINUTES",
        help="check with this device's alerts arriving late (repeatable)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        delays = dict(parse_delay(text) for text in args.delay)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not args.alerts.is_file():
        print(f"{args.alerts}: no such file; give the recorded alerts JSONL", file=sys.stderr)
        return 2
    summary = replay(config, args.alerts, args.out)
    for bad in summary.bad_lines:
        print(f"{args.alerts}:{bad.line}: {bad.error}", file=sys.stderr)
    print(
        f"{summary.alerts} alerts ({summary.duplicates} duplicates, {summary.late} late, "
        f"{len(summary.bad_lines)} bad lines) → {summary.incidents} work orders "
        f"({summary.open} open, {summary.closed} closed, {summary.reopened} reopened) "
        f"in {summary.out_path}"
    )
    if args.shuffle is None and not delays:
        return 0
    alerts = list(read_alerts(args.alerts, []))
    check = check_order(config, alerts, seed=args.shuffle, delays=delays)
    print(order_check_line(check, args.shuffle, delays))
    return 0 if check.same else 1


if __name__ == "__main__":
    sys.exit(main())
