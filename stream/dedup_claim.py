"""The claim on a place in the database, so that one problem stays one work order when its
alerts fall on two partitions or two workers.

Each worker's dedup engine holds the incidents of its own partitions; an alert within its
kind's radius of its key cell's border (:func:`citywatch.stream.partitioning.claim_of`) may
belong to an incident another worker opened, or opens at the same moment. Before such
alerts are placed, the batch's transaction

1. takes transaction-scoped advisory locks on the fine H3 cells around each of them (all
   of the batch's at once, in one sorted order: two workers never wait on each other in a
   cycle; the kind's own lock shared before them, or exclusive instead of them for a
   batch that would take too many). Two alerts within a radius of one incident centre
   both lock the cell of that centre, so the second transaction waits until the first
   committed;
2. reads the live incidents of the kind around each (:func:`~citywatch.stream.workorder_store.load_near`)
   and puts into the engine those it does not hold, or holds at an older version — the
   alert then joins the other worker's incident instead of opening a second one.

What two workers write to a shared incident is guarded by its version
(:func:`~citywatch.stream.workorder_store.check_incident_versions`): a worker holding an
older copy rebuilds its state and retries instead of overwriting. Every worker reads every
live incident at start and at each rebalance, so it also holds copies of incidents other
workers go on extending; :func:`refresh_moved` reads those again before each SLA tick, so
the tick never closes a live incident on a stale copy (nor reads the whole state again for
each refused write). Alerts deeper inside their
cell skip all of this: no other partition holds an incident they can meet.

The decisions are pure (:mod:`citywatch.stream.partitioning`); this module is their I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from psycopg import AsyncConnection

from citywatch.contracts import AlertKind
from citywatch.stream import workorder_store
from citywatch.stream.dedup import Incident, alert_position
from citywatch.stream.partitioning import (
    Claim,
    DevicePositions,
    alert_key_cell,
    claim_of,
    device_positions,
    kind_lock,
)
from citywatch.stream.processor import AlertProcessor
from citywatch.stream.sink import AlertRow
from citywatch.workorder.lifecycle import WorkOrder

log = logging.getLogger(__name__)
_LOCK = "SELECT count(pg_advisory_xact_lock(k)) FROM unnest(%s::bigint[]) AS k"
"""Locks in the array's order (a set-returning scan feeds the aggregate row by row)."""
_LOCK_ONE = "SELECT pg_advisory_xact_lock(%s)"
_LOCK_SHARED = "SELECT pg_advisory_xact_lock_shared(%s)"
MAX_CELL_LOCKS = 256
"""Cell locks one transaction takes for one kind; a batch whose border alerts of a kind
need more locks the whole kind instead (the lock table is shared and bounded:
max_locks_per_transaction × connections)."""


class PlaceClaims:
    """Claims the places of a batch's border alerts for ``processor`` (see the module doc);
    ``resolution`` is the H3 resolution the bridge keys alerts by."""

    def __init__(self, processor: AlertProcessor, resolution: int) -> None:
        self.processor, self.resolution = processor, resolution
        self.positions: DevicePositions = device_positions(processor.config)
        self.claimed = 0  # alerts that paid for a claim (for the counters and the tests)
        self.adopted = 0  # incidents read in from another worker's writes

    def claims(self, rows: Sequence[AlertRow]) -> list[Claim]:
        """The claims the rows' alerts need (none for alerts deep inside their cell, those
        matched per device and those without a position)."""
        processor = self.processor
        needed = []
        for row in rows:
            alert = row.alert
            policy = processor.workflow.dedup.get(alert.kind)
            if policy is None or alert.kind is AlertKind.DEVICE_FAULT:
                continue  # no policy: the processor refuses it; faults: per device
            position = alert_position(alert, processor.placements)
            if position is None:
                continue  # matched per device, keyed per device: one partition
            cell = alert_key_cell(alert, self.positions, self.resolution)
            claim = claim_of(alert.kind.value, position.lat, position.lon, policy.radius_m, cell)
            if claim is not None:
                needed.append(claim)
        return needed

    async def claim(self, conn: AsyncConnection, rows: Sequence[AlertRow], now: datetime) -> int:
        """Lock the places of ``rows``' border alerts until commit and bring in the incidents
        other workers hold there; the number brought in. Call first in the transaction."""
        claims = self.claims(rows)
        if not claims:
            return 0
        self.claimed += len(claims)
        await take_locks(conn, claims)
        processor = self.processor
        found = await workorder_store.load_near(
            conn, processor.workflow, processor.tz, now - processor.keep_closed,
            sorted({claim.box for claim in claims}),
        )  # fmt: skip
        adopted = adopt(processor, found)
        self.adopted += adopted
        if adopted:
            log.info("brought in %d incidents stored by another worker near a cell border", adopted)
        return adopted


async def take_locks(conn: AsyncConnection, claims: Sequence[Claim]) -> None:
    """Each kind's lock first (in id order; shared, or exclusive for a kind with more than
    :data:`MAX_CELL_LOCKS` cells), then the cells (in id order): every worker takes them in
    one order, so none waits on another in a cycle, and a whole-kind claim meets every cell
    claim of its kind."""
    cells: dict[str, set[int]] = {}
    for claim in claims:
        cells.setdefault(claim.kind, set()).update(claim.locks)
    whole = {kind for kind, ids in cells.items() if len(ids) > MAX_CELL_LOCKS}
    for lock, kind in sorted((kind_lock(kind), kind) for kind in cells):
        await conn.execute(_LOCK_ONE if kind in whole else _LOCK_SHARED, (lock,))
    fine = sorted({lock for kind, ids in cells.items() if kind not in whole for lock in ids})
    if fine:
        await conn.execute(_LOCK, (fine,))


async def refresh_moved(conn: AsyncConnection, processor: AlertProcessor) -> int:
    """Read again the open incidents ``processor`` holds that another worker wrote since
    (their stored version moved); how many. Run before the SLA tick: it closes incidents by
    their last activity, and a copy that missed another worker's alerts would look quiet
    (its write would be refused, at the cost of reading the whole state again). Incidents
    folded away meanwhile are left: writing one is refused the same way."""
    held = {i: inc.version for i, inc in processor.incident_of.items() if inc.state == "open"}
    stored = await workorder_store.stored_versions(conn, list(held))
    moved = [i for i, version in stored.items() if version != held[i]]
    if not moved:
        return 0
    found = await workorder_store.load_ids(conn, processor.workflow, processor.tz, moved)
    return adopt(processor, found)


def adopt(processor: AlertProcessor, found: Sequence[tuple[WorkOrder, Incident]]) -> int:
    """Put into ``processor`` the incidents of ``found`` it does not hold at their stored
    version (its own, unchanged since it wrote them, are left as they are); how many."""
    fresh = []
    for order, incident in found:
        held = processor.incident_of.get(order.id)
        if held is not None and held.version == incident.version:
            continue
        fresh.append((order, incident))
    if not fresh:
        return 0
    processor.engine.restore(incident for _, incident in fresh)
    for order, incident in fresh:
        processor.orders[order.id] = order
        processor.incident_of[order.id] = incident
        processor.escalation_at.pop(order.id, None)
    return len(fresh)
