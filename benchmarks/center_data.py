"""The command-center benchmark's data: a realistic site's work orders, alerts, links and
events, each order played through the real state machine, loaded by COPY in the rows the
center's tests seed too (``benchmarks/seeding.py``).

Split from benchmarks/center.py (which measures); see its docstring for the method.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from rich.progress import Progress

from benchmarks.seeding import (
    ALERT_COLUMNS,
    FEED_EVENT_COLUMNS,
    LINK_COLUMNS,
    ORDER_COLUMNS,
    alert_row,
    feed_event_row,
    order_row,
)
from citywatch.config import CitywatchConfig
from citywatch.config.site import Placement
from citywatch.contracts import AlertKind
from citywatch.workorder import lifecycle as lc
from citywatch.workorder.priority import Routing, priority, route
from citywatch.workorder.sla import site_zone

HISTORY = timedelta(days=90)
KINDS = {  # share of the orders, devices that report it, the rule that fires
    AlertKind.ILLEGAL_PARKING: (0.45, ("camera",), "parking-dwell"),
    AlertKind.STREET_VENDING: (0.22, ("camera",), "vending-dwell"),
    AlertKind.WATERLOGGING: (0.13, ("sensor",), "depth-level"),
    AlertKind.SMOKE: (0.10, ("camera", "dock"), "smoke"),
    AlertKind.DEVICE_FAULT: (0.10, ("camera", "sensor", "dock"), "heartbeat"),
}
KIND_WEIGHTS = {kind: weight for kind, (weight, _, _) in KINDS.items()}
DEVICES_FOR_KIND = {kind: devices for kind, (_, devices, _) in KINDS.items()}
RULES = {kind: rule for kind, (_, _, rule) in KINDS.items()}


@dataclass(frozen=True)
class Device:
    """A device of the site, where the orders it reports scatter around."""

    id: str
    kind: str  # camera | sensor | dock
    placement: Placement
    lat: float
    lon: float


def site_devices(config: CitywatchConfig) -> list[Device]:
    devices = config.devices
    found = []
    for kind, group in (("camera", devices.cameras), ("sensor", devices.sensors),
                        ("dock", devices.docks)):  # fmt: skip
        for device in group:
            position = device.placement.position or config.site.center
            found.append(Device(device.id, kind, device.placement, position.lat, position.lon))
    return found


@dataclass
class Sizes:
    work_orders: int = 0
    alerts: int = 0
    links: int = 0
    events: int = 0


class Stop(Exception):
    """The next step of a simulated order lies after "now": it stays where it is."""


class OrderSimulator:
    """Plays one work order through the state machine with plausible step times.

    Durations are fractions of the order's SLA limit (10 minutes for smoke, a day for a
    parked car), so every tier sees a similar share of late and escalated orders.
    """

    def __init__(self, config: CitywatchConfig, now: datetime) -> None:
        self.config = config
        self.now = now
        self.tz = site_zone(config.site.timezone)
        self.calendar = config.workflow.sla.calendar
        self.escalation = config.workflow.sla.escalation
        self.routes: dict[AlertKind, Routing] = {k: route(config.workflow, k) for k in KIND_WEIGHTS}
        self.departments = [d.id for d in config.workflow.departments]
        devices = site_devices(config)
        self.devices = {
            k: [d for d in devices if d.kind in kinds] for k, kinds in DEVICES_FOR_KIND.items()
        }
        self.kinds = list(KIND_WEIGHTS)
        self.kind_weights = list(KIND_WEIGHTS.values())

    def _escalate_until(self, order: lc.WorkOrder, when: datetime) -> None:
        """Escalations the timer would have made before ``when`` (while the order is open)."""
        if not order.is_open:
            return
        limit = order.due_at - order.clock_started_at
        for step in self.escalation:
            at = order.clock_started_at + limit * step.after_fraction
            if at >= when or at > self.now or step.level in order.escalated_levels:
                continue
            current = order.escalation_level
            rank = lc.GRID_LEVELS.index
            if current is not None and rank(step.level) <= rank(current):
                continue
            lc.escalate(order, actor=lc.SYSTEM_ACTOR, time=at, level=step.level, reason="SLA timer")

    def _step(
        self, order: lc.WorkOrder, when: datetime, action: lc.Action, actor: str, **args: Any
    ) -> datetime:
        self._escalate_until(order, when)
        if when > self.now:
            raise Stop
        lc.apply(order, action, actor=actor, time=when, **args)
        return when

    def play(
        self, rng: random.Random, order_id: str, opened_at: datetime
    ) -> tuple[lc.WorkOrder, Device, float, float]:
        """One order opened at ``opened_at`` and taken as far as "now"; its device and place."""
        kind = rng.choices(self.kinds, self.kind_weights)[0]
        routing = self.routes[kind]
        device = rng.choice(self.devices[kind])
        lat = device.lat + rng.gauss(0, 0.006)
        lon = device.lon + rng.gauss(0, 0.007)
        confidence = rng.uniform(0.35, 0.98)
        level = None
        if kind is AlertKind.WATERLOGGING:
            level = rng.choices(["lane", "underpass_closure", "closure"], [0.7, 0.22, 0.08])[0]
        sources = 1 if rng.random() < 0.9 else 3
        prio = priority(kind, max_confidence=confidence, depth_level=level, sources=sources)
        order = lc.open_work_order(
            id=order_id, routing=routing, priority=prio, opened_at=opened_at,
            placement=device.placement, alert_ids=(f"{order_id}.e0.0",),  # the first alert opens it
            calendar=self.calendar, tz=self.tz,
        )  # fmt: skip
        limit_s = (order.due_at - order.opened_at).total_seconds()

        def later(t: datetime, mean_fraction: float) -> datetime:
            return t + timedelta(seconds=rng.expovariate(1 / (mean_fraction * limit_s)) + 1)

        def act(mean_fraction: float, action: lc.Action, actor: str, **args: Any) -> datetime:
            """The next step, a random while (about ``mean_fraction`` of the limit) after ``t``."""
            return self._step(order, later(t, mean_fraction), action, actor, **args)

        a = lc.Action
        dispatcher = f"dispatcher-{rng.randint(1, 6):02d}"
        t = opened_at
        with contextlib.suppress(Stop):
            fate = rng.random()
            if fate < 0.08:  # a machine's false alarm, dismissed at triage
                act(0.05, a.MARK_FALSE_POSITIVE, dispatcher, reason="no problem on the snapshot")
                return order, device, lat, lon
            for cycle in range(2):  # a second cycle only after a reopen (复发)
                department = order.department
                t = act(0.03, a.DISPATCH, dispatcher, department=department)
                staff = f"{department}-{rng.randint(1, 9):02d}"
                if rng.random() < 0.04:  # 退单, sent to another department
                    t = act(0.05, a.RETURN, staff, grounds="not our remit")
                    other = rng.choice([d for d in self.departments if d != department])
                    t = act(0.03, a.DISPATCH, dispatcher, department=other)
                    staff = f"{other}-{rng.randint(1, 9):02d}"
                t = act(0.05, a.SIGN, staff)
                if 0.08 <= fate < 0.11:  # stalled: stays open, goes overdue, escalates
                    if rng.random() < 0.5:
                        act(0.05, a.START, staff)
                    raise Stop
                if rng.random() < 0.06:
                    extend_at = later(t, 0.1)
                    if extend_at < order.due_at:
                        half = (order.due_at - order.clock_started_at) / 2
                        t = self._step(order, extend_at, a.EXTEND, staff,
                                       reason="waiting for a part", duration=half)  # fmt: skip
                if rng.random() < 0.85:
                    t = act(0.05, a.START, staff)
                took = timedelta(seconds=limit_s * rng.lognormvariate(math.log(0.35), 0.8))
                t = self._step(order, t + took, a.RESOLVE, staff, note="handled")
                if rng.random() < 0.07:  # 返工
                    t = act(0.1, a.VERIFY, dispatcher, passed=False, note="still there")
                    t = act(0.05, a.START, staff)
                    t = act(0.3, a.RESOLVE, staff, note="again")
                t = act(0.1, a.VERIFY, dispatcher, passed=True)
                t = act(0.05, a.CLOSE, dispatcher)
                if cycle or rng.random() >= 0.02:
                    break
                t = act(3.0, a.REOPEN, lc.SYSTEM_ACTOR, reason="the problem is back")
        self._escalate_until(order, self.now)
        return order, device, lat, lon


def alert_counts(rng: random.Random, orders: int, alerts: int) -> list[int]:
    """Alerts per order summing to ``alerts``: at least one each, the rest log-normal."""
    if alerts < orders:
        raise ValueError(f"--alerts ({alerts}) must be at least --work-orders ({orders})")
    weights = [rng.lognormvariate(0, 1.2) for _ in range(orders)]
    scale = (alerts - orders) / sum(weights) if orders else 0.0
    counts = [1 + int(w * scale) for w in weights]
    for i in rng.sample(range(orders), alerts - sum(counts)) if orders else ():
        counts[i] += 1
    return counts


def _order_alerts(
    rng: random.Random, order: lc.WorkOrder, device: Device, lat: float, lon: float, count: int,
    offset: int, now: datetime,
) -> list[tuple[Any, ...]]:  # fmt: skip
    """``count`` alert rows (episodes of start, updates, end) of one order's incident."""
    kind = order.kind
    end = min(order.resolved_at or order.closed_at or order.due_at, now)
    active_s = max(60.0, min((end - order.opened_at).total_seconds(), 2 * 86400))
    episodes = 1 if count < 4 else 1 + rng.randint(0, min(3, count // 4))
    sizes = [count // episodes + (1 if e < count % episodes else 0) for e in range(episodes)]
    rows: list[tuple[Any, ...]] = []
    camera = device.kind == "camera"
    for e, size in enumerate(sizes):
        episode = f"{order.id}.e{e}"
        start = order.opened_at + timedelta(seconds=active_s * e / episodes)
        step_s = active_s / episodes / max(size, 1)
        track = f"t{rng.randint(1, 99999)}" if camera else None
        for seq in range(size):
            at = start + timedelta(seconds=seq * step_s)
            phase = "start" if seq == 0 else ("end" if seq == size - 1 else "update")
            alert_id = f"{episode}.{seq}"
            evidence = "[]"
            if camera and phase == "start":
                folder = "file:///var/lib/citywatch/evidence"
                evidence = json.dumps([
                    {"kind": "snapshot", "uri": f"{folder}/{alert_id}.jpg", "content_type": "image/jpeg"},
                    {"kind": "crop", "uri": f"{folder}/{alert_id}.crop.jpg", "content_type": "image/jpeg"},
                ])  # fmt: skip
            if kind is AlertKind.WATERLOGGING:
                attributes = json.dumps({"depth_cm": round(rng.uniform(10, 45), 1)})
            elif camera:
                what = "car" if kind is AlertKind.ILLEGAL_PARKING else "person"
                attributes = json.dumps({"class": what, "dwell_s": round(rng.uniform(60, 1800))})
            else:
                attributes = "{}"
            rows.append(alert_row(
                alert_id, episode, seq, at, device_kind=device.kind, device_id=device.id,
                kind=kind.value, rule=RULES[kind], phase=phase, district=order.district,
                zone="zone-1" if camera else None, lat=lat + rng.gauss(0, 0.00005),
                lon=lon + rng.gauss(0, 0.00005), confidence=round(rng.uniform(0.35, 0.98), 3),
                track_id=track, evidence=evidence, attributes=attributes,
                received_at=at + timedelta(milliseconds=rng.randint(80, 900)),
                kafka_offset=offset + len(rows),
            ))  # fmt: skip
    return rows


def generate(
    url: str,
    config: CitywatchConfig,
    work_orders: int,
    alerts: int,
    seed: int,
    progress: Progress,
    chunk: int = 2000,
) -> dict[str, Any]:
    """Fill a migrated, empty database; returns what was made and how long it took."""
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    sim = OrderSimulator(config, now)
    counts = alert_counts(rng, work_orders, alerts)
    opened = sorted(now - HISTORY * rng.random() for _ in range(work_orders))
    sizes = Sizes()
    task = progress.add_task("generating work orders", total=work_orders)
    began = time.perf_counter()
    names = ("work_orders", "alerts", "work_order_alerts", "workorder_events")
    columns = (ORDER_COLUMNS, ALERT_COLUMNS, LINK_COLUMNS, FEED_EVENT_COLUMNS)
    with contextlib.ExitStack() as stack:
        conns = [stack.enter_context(psycopg.connect(url)) for _ in names]
        copies = []
        for conn, name, cols in zip(conns, names, columns, strict=True):
            conn.execute("SET session_replication_role = replica")  # no FK or feed triggers
            conn.execute("SET synchronous_commit = off")
            sql = f"COPY {name} ({', '.join(cols)}) FROM STDIN"
            copies.append(stack.enter_context(conn.cursor().copy(sql)))
        order_copy, alert_copy, link_copy, event_copy = copies
        feed_id = 0
        for n in range(work_orders):
            order_id = f"wo-{opened[n]:%Y%m%d}-{n:07d}"
            order, device, lat, lon = sim.play(rng, order_id, opened[n])
            rows = _order_alerts(rng, order, device, lat, lon, counts[n], sizes.alerts, now)
            for row in rows:
                alert_copy.write_row(row)
                link_copy.write_row((order.id, row[0], row[21]))  # received → linked
            for e in order.events:
                feed_id += 1
                event_copy.write_row(feed_event_row(e, feed_id))
            last = rows[-1][1]
            incident_open = order.is_open and now - last < timedelta(hours=1)
            order_copy.write_row(order_row(
                order, lat=lat, lon=lon, last_activity=last,
                sources=[f"demo/{device.kind}/{device.id}"], alert_count=len(rows),
                max_confidence=max(r[13] for r in rows), updated_at=order.events[-1].time,
                episodes={r[2] for r in rows}, open_episodes=[rows[-1][2]] if incident_open else [],
                incident_closed_at=None if incident_open else last,
            ))  # fmt: skip
            sizes.work_orders += 1
            sizes.alerts += len(rows)
            sizes.links += len(rows)
            sizes.events += len(order.events)
            if (n + 1) % chunk == 0 or n + 1 == work_orders:
                progress.update(
                    task,
                    completed=n + 1,
                    description=(
                        f"generating: {sizes.work_orders:,} orders, {sizes.alerts:,} alerts,"
                        f" {sizes.events:,} events"
                    ),
                )
        progress.update(task, description="finishing COPY (indexes)…")
    copy_s = time.perf_counter() - began  # the ExitStack ended every COPY and committed
    progress.update(task, description="VACUUM ANALYZE…")
    began = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT setval('workorder_feed_seq', %s)", (max(feed_id, 1),))
        for name in names:
            conn.execute(f"VACUUM (ANALYZE) {name}")
        vacuum_s = time.perf_counter() - began
        progress.update(task, description="checking links and counting states…")
        shape = dataset_shape(conn, now)
    progress.update(task, description="data ready")
    return {
        "seed": seed,
        "now": now.isoformat(),
        "rows": sizes.__dict__,
        "copy_s": round(copy_s, 2),
        "vacuum_analyze_s": round(vacuum_s, 2),
        "rows_per_s": round(
            (sizes.alerts + sizes.links + sizes.events + sizes.work_orders) / copy_s
        ),
        **shape,
    }


def dataset_shape(conn: psycopg.Connection, now: datetime) -> dict[str, Any]:
    """How the generated data is spread (states, open, overdue, escalated) and its size."""
    open_states = sorted(s.value for s in lc.OPEN_STATES)
    by_state: dict[str, int] = dict(
        conn.execute(
            "SELECT state, count(*) FROM work_orders GROUP BY state ORDER BY 2 DESC"
        ).fetchall()
    )
    row = conn.execute(
        """SELECT count(*) FILTER (WHERE state = ANY(%(open)s)),
                  count(*) FILTER (WHERE state = ANY(%(open)s) AND due_at < %(now)s),
                  count(*) FILTER (WHERE escalation_level IS NOT NULL),
                  count(*) FILTER (WHERE escalation_level IS NOT NULL AND state = ANY(%(open)s))
           FROM work_orders""",
        {"open": open_states, "now": now},
    ).fetchone()
    assert row is not None
    sizes: dict[str, str] = dict(
        conn.execute(
            """SELECT relname, pg_size_pretty(pg_total_relation_size(oid)) FROM pg_class
           WHERE relname IN ('work_orders', 'alerts', 'work_order_alerts', 'workorder_events')"""
        ).fetchall()
    )
    orphans = conn.execute(
        """SELECT (SELECT count(*) FROM work_order_alerts l
                   WHERE NOT EXISTS (SELECT 1 FROM work_orders w WHERE w.id = l.work_order_id)
                      OR NOT EXISTS (SELECT 1 FROM alerts a WHERE a.id = l.alert_id))
                + (SELECT count(*) FROM workorder_events e
                   WHERE NOT EXISTS (SELECT 1 FROM work_orders w WHERE w.id = e.work_order_id))"""
    ).fetchone()
    return {
        "foreign_keys_ok": orphans is not None and orphans[0] == 0,
        "by_state": by_state,
        "open": row[0],
        "overdue": row[1],
        "escalated": row[2],
        "escalated_open": row[3],
        "table_sizes": sizes,
    }
