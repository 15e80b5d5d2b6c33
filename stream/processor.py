"""From stored alerts to work orders: dedup, routing, priority, SLA clock and escalation.

The orchestration the Faust agents run inside one database transaction per batch: insert
the batch (learning which alerts are new), feed only new alerts to the dedup engine, open,
extend or reopen work orders — or fold one into an older order of the same problem when late
data shows they are one (its alerts move, both timelines say so) — and save them with their
events. The database decides what is new, so a redelivered batch changes nothing; after a database error the in-memory state is
rebuilt from the database before the batch is retried.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from psycopg import AsyncConnection

from citywatch.config import CitywatchConfig
from citywatch.config.site import Placement
from citywatch.contracts import Alert, AlertKind, WorkOrderEvent
from citywatch.stream import workorder_store
from citywatch.stream.dedup import DedupEngine, Incident, alert_position
from citywatch.stream.sink import AlertConflict, AlertRow, insert_alerts
from citywatch.workorder.escalation import escalate_due, next_escalation_at
from citywatch.workorder.lifecycle import (
    ALLOWED_FROM,
    Action,
    WorkOrder,
    WorkOrderTransition,
    as_message,
    open_work_order,
    recur,
)
from citywatch.workorder.merge import fold_into
from citywatch.workorder.priority import Routing, priority, route
from citywatch.workorder.sla import site_zone

log = logging.getLogger(__name__)
SYSTEM = "citywatch"
FORGET_EVERY = timedelta(minutes=1)
"""How often the SLA tick scans every held order for ones that can be dropped."""


@dataclass
class Outcome:
    """What a batch or a tick produced, to publish once the transaction committed."""

    work_order_of: dict[str, str] = field(default_factory=dict)  # alert id → work order id
    events: list[WorkOrderEvent] = field(default_factory=list)
    new_alerts: int = 0
    conflicts: list[AlertConflict] = field(default_factory=list)
    """Alerts refused because their id already names another alert (to dead-letter)."""


class AlertProcessor:
    """The stateful core of one stream worker (dedup engine + open work orders)."""

    def __init__(self, config: CitywatchConfig) -> None:
        self.config = config
        self.workflow = config.workflow
        self.tz = site_zone(config.site.timezone)
        self.placements = config.placements()
        self.default_district = config.site.districts[0].id
        # Closed incidents and orders are held while one can still reopen, or a late backlog
        # still land in (or fold into) it.
        self.keep_closed = max(
            [self.workflow.late_data, *(p.reopen for p in self.workflow.dedup.values())]
        )
        self._reset()

    def _reset(self) -> None:
        self.engine = DedupEngine(self.workflow.dedup)
        self.orders: dict[str, WorkOrder] = {}
        self.incident_of: dict[str, Incident] = {}  # work order id → its incident (same id)
        # work order id → (its seq, when its next escalation step falls due): every change
        # that can move that time is a transition, which bumps the seq
        self.escalation_at: dict[str, tuple[int, datetime | None]] = {}
        self._routing: dict[AlertKind, Routing] = {}  # the config does not change at run time
        self._forgot_at: datetime | None = None

    def _route(self, kind: AlertKind) -> Routing:
        routing = self._routing.get(kind)
        if routing is None:
            routing = self._routing[kind] = route(self.workflow, kind)
        return routing

    async def restore(self, conn: AsyncConnection, now: datetime) -> int:
        """Rebuild dedup state and open work orders from the database."""
        self._reset()
        loaded = await workorder_store.load(conn, self.workflow, self.tz, now - self.keep_closed)
        self.engine.restore(incident for _, incident in loaded)
        self.orders = {order.id: order for order, _ in loaded}
        self.incident_of = {incident.id: incident for _, incident in loaded}
        return len(loaded)

    def placement_of(self, alert: Alert) -> Placement | None:
        return self.placements.get((alert.device.kind.value, alert.device.id))

    def district_of(self, alert: Alert) -> str:
        place = self.placement_of(alert)
        return place.district if place else self.default_district

    async def handle(self, conn: AsyncConnection, rows: Sequence[AlertRow]) -> Outcome:
        """Store a batch of alerts and fold the new ones into work orders (one transaction)."""
        outcome = Outcome()
        stored = await insert_alerts(conn, rows)
        new_ids, outcome.conflicts = stored.new, stored.conflicts
        outcome.new_alerts = len(new_ids)
        refused = {id(c.row) for c in stored.conflicts}
        changed: dict[str, tuple[WorkOrder, Incident]] = {}
        events: list[WorkOrderTransition] = []
        links: list[tuple[str, str]] = []
        moves: list[tuple[str, str]] = []  # (folded order, the order its alerts move to)
        fresh = sorted(
            (r.alert for r in rows if r.alert.id in new_ids and id(r) not in refused),
            key=lambda a: a.event_time,
        )
        seen: set[str] = set()
        for alert in fresh:
            if alert.id in seen:
                continue
            seen.add(alert.id)
            order, incident, new_events, folded = self._fold(alert)
            events += new_events
            for gone_order, gone in folded:
                changed[gone_order.id] = (gone_order, gone)
                moves.append((gone_order.id, order.id))
            changed[order.id] = (order, incident)
            links.append((order.id, alert.id))
            outcome.work_order_of[alert.id] = order.id
        for folded_id, into in moves:  # receipts name the order an alert is in after the batch
            for alert_id, order_id in outcome.work_order_of.items():
                if order_id == folded_id:
                    outcome.work_order_of[alert_id] = into
        old = [r.alert.id for r in rows if r.alert.id not in new_ids and id(r) not in refused]
        if old:  # redeliveries: their receipts still name the work order
            cursor = await conn.execute(
                "SELECT alert_id, work_order_id FROM work_order_alerts WHERE alert_id = ANY(%s)",
                (old,),
            )
            outcome.work_order_of.update({a: w for a, w in await cursor.fetchall()})
        await workorder_store.save(conn, changed.values(), events, links, moves)
        outcome.events = [as_message(self.orders[e.work_order_id], e) for e in events]
        return outcome

    def _fold(
        self, alert: Alert
    ) -> tuple[WorkOrder, Incident, list[WorkOrderTransition], list[tuple[WorkOrder, Incident]]]:
        """Place one alert; returns its order and incident, the order's new events, and the
        orders late data folded into it (with their incidents)."""
        result = self.engine.add(alert, alert_position(alert, self.placements))
        incident = result.incident
        self.incident_of[incident.id] = incident
        for gone in result.absorbed:
            self.incident_of[gone.id] = gone
        rank = priority(
            alert.kind,
            max_confidence=incident.max_confidence,
            depth_level=incident.level,
            sources=len(incident.sources),
        )
        order = self.orders.get(incident.id)
        if order is None:
            place = self.placement_of(alert) or Placement(district=self.default_district)
            order = open_work_order(
                id=incident.id,
                routing=self._route(alert.kind),
                priority=rank,
                opened_at=alert.event_time,
                placement=place,
                alert_ids=[alert.id],
                calendar=self.workflow.sla.calendar,
                tz=self.tz,
                auto_file=self.workflow.machine_reports.auto_file,
                auto_dispatch=self.workflow.machine_reports.auto_dispatch,
                recurrence_of=incident.recurrence_of,
            )
            self.orders[order.id] = order
            return order, incident, list(order.events), []
        events: list[WorkOrderTransition] = []
        folded = []
        for gone in result.absorbed:
            gone_order = self.orders.get(gone.id)
            if gone_order is None:  # forgotten already: its alerts stay where they are
                log.warning("work order %s folded into %s is not held", gone.id, order.id)
                continue
            events += fold_into(gone_order, order, time=alert.event_time, actor=SYSTEM)
            folded.append((gone_order, gone))
        # A recurrence, or a fold that brought a live problem into a closed order, reopens it
        # (one that people resolved and are verifying is left to them).
        revived = bool(folded) and incident.state == "open"
        if (result.reopened or revived) and order.state in ALLOWED_FROM[Action.REOPEN]:
            events += recur(
                order,
                time=alert.event_time,
                reason="recurrence (复发)",
                alert_ids=[alert.id],
                then=self.workflow.reopen_to,
            )
        elif alert.id not in order.alert_ids:
            order.alert_ids.append(alert.id)
        order.priority = min(order.priority, rank)  # more sources or deeper water: more urgent
        return order, incident, events, folded

    async def tick(self, conn: AsyncConnection, now: datetime) -> Outcome:
        """Close quiet incidents and escalate overdue work orders (the Faust timer)."""
        changed: dict[str, tuple[WorkOrder, Incident]] = {}
        events: list[WorkOrderTransition] = []
        for incident in self.engine.expire(now):
            self.incident_of[incident.id] = incident
            if incident.id in self.orders:
                changed[incident.id] = (self.orders[incident.id], incident)
        for order in self.orders.values():
            due_at = self._next_escalation(order)
            if due_at is None or due_at > now:
                continue
            taken = escalate_due(order, now, self.workflow.sla.escalation, actor=SYSTEM)
            if taken:
                events += taken
                changed[order.id] = (order, self.incident_of[order.id])
        if self._forgot_at is None or now - self._forgot_at >= FORGET_EVERY:
            # A scan of every order held: once a minute bounds memory just as well.
            self._forgot_at = now
            self.engine.forget_closed_before(now - self.keep_closed)
            self._forget(now, keep=set(changed))
        if changed or events:
            await workorder_store.save(conn, changed.values(), events, [])
        return Outcome(events=[as_message(self.orders[e.work_order_id], e) for e in events])

    def _next_escalation(self, order: WorkOrder) -> datetime | None:
        """When ``order``'s next escalation step falls due, computed once per change."""
        cached = self.escalation_at.get(order.id)
        if cached is None or cached[0] != order.seq:
            cached = (order.seq, next_escalation_at(order, self.workflow.sla.escalation))
            self.escalation_at[order.id] = cached
        return cached[1]

    def _forget(self, now: datetime, keep: set[str]) -> None:
        """Drop closed work orders whose incident can no longer be reopened or take late
        alerts (memory bound)."""
        cutoff = now - self.keep_closed
        for order_id, order in list(self.orders.items()):
            incident = self.incident_of[order_id]
            reopenable = incident.state == "open" or (incident.closed_at or now) >= cutoff
            if order_id not in keep and not order.is_open and not reopenable:
                del self.orders[order_id]
                del self.incident_of[order_id]
                self.escalation_at.pop(order_id, None)
