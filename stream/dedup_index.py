"""The dedup engine's indexes: its bookkeeping per incident, its rules per alert kind, and
the grid that finds the incidents within reach of a point.

Kept apart from the engine's decisions (:mod:`citywatch.stream.dedup`) because they are the
hot path's data layout, not its policy: float times instead of datetimes, and a grid of
cells at least ``radius_m`` wide per kind, which keeps a lookup to about nine cells with
thousands of open incidents. Distances are equirectangular metres on WGS84 (well under
0.1 % off the haversine distance at dedup radii).
"""

from __future__ import annotations

import math

from citywatch.config.workflow import DedupPolicy
from citywatch.contracts.messages import AlertKind
from citywatch.stream.incident import Incident, Position, weighted_median

EARTH_RADIUS_M = 6_371_008.8
M_PER_DEG = EARTH_RADIUS_M * math.pi / 180
POLAR_LAT = 89.9  # beyond this a grid row is one cell wide in longitude
NEVER = math.inf


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Equirectangular distance in metres between two WGS84 points."""
    x = math.radians(lon2 - lon1) * math.cos(math.radians((lat1 + lat2) / 2))
    y = math.radians(lat2 - lat1)
    return EARTH_RADIUS_M * math.hypot(x, y)


class Slot:
    """The engine's bookkeeping for one incident (float times for the hot path)."""

    __slots__ = (
        "cell",
        "closed_ts",
        "device",
        "ended",
        "inc",
        "last_ts",
        "lat",
        "lat_w",
        "latest_ts",
        "lon",
        "lon_w",
        "opened_ts",
        "rules",
        "scheduled",
        "seq",
        "sightings",
        "span_ts",
    )

    def __init__(self, inc: Incident, rules: KindRules, device: str | None) -> None:
        self.inc = inc
        self.rules = rules
        self.device = device  # set when matched per device instead of by position
        self.opened_ts = inc.opened_at.timestamp()
        self.last_ts = inc.last_activity.timestamp()
        self.latest_ts = -NEVER  # event time of the alert whose attributes are kept
        self.closed_ts = inc.closed_at.timestamp() if inc.closed_at is not None else NEVER
        self.scheduled = NEVER  # deadline of this incident's live entry in the expiry heap
        self.ended: set[str] = inc.episodes - inc.open_episodes
        self.lat = inc.position.lat if inc.position is not None else 0.0
        self.lon = inc.position.lon if inc.position is not None else 0.0
        self.cell = (0, 0)
        self.span_ts = self.last_ts  # latest event time of any of its alerts, stragglers too
        self.sightings = 0  # positioned alerts behind its centre
        self.seq = 0  # creation order in this engine: a merge keeps the older work order
        # the incident's sightings, latitude and longitude apart: value → summed weight
        self.lat_w: dict[float, float] = {}
        self.lon_w: dict[float, float] = {}

    def absorb(self, slot: Slot) -> None:
        """Take in everything another incident's bookkeeping holds (a late-data merge): its
        alerts, episodes, sources, times, summary and sightings. Indexes are the engine's."""
        inc, other = self.inc, slot.inc
        inc.alert_ids.extend(other.alert_ids)
        inc.episodes |= other.episodes
        self.ended |= slot.ended
        inc.sources |= other.sources
        inc.max_confidence = max(inc.max_confidence, other.max_confidence)
        inc.reopen_count += other.reopen_count
        inc.recurrence_of = inc.recurrence_of or other.recurrence_of
        if slot.opened_ts < self.opened_ts:
            self.opened_ts, inc.opened_at = slot.opened_ts, other.opened_at
        self.span_ts = max(self.span_ts, slot.span_ts)
        if slot.last_ts > self.last_ts:
            self.last_ts, inc.last_activity = slot.last_ts, other.last_activity
        peaks = [
            p
            for p in (inc.attributes.get("peak_depth_cm"), other.attributes.get("peak_depth_cm"))
            if isinstance(p, int | float) and not isinstance(p, bool)
        ]
        if slot.latest_ts > self.latest_ts:
            self.latest_ts = slot.latest_ts
            inc.attributes.update(other.attributes)
            inc.level = other.level
        if peaks:
            inc.attributes["peak_depth_cm"] = max(peaks)
        self.sightings += slot.sightings
        for mine, theirs in ((self.lat_w, slot.lat_w), (self.lon_w, slot.lon_w)):
            for value, weight in theirs.items():
                mine[value] = mine.get(value, 0.0) + weight

    def add_sighting(self, lat: float, lon: float, weight: float) -> bool:
        """Count one positioned alert in the centre; returns whether the centre moved."""
        self.sightings += 1
        self.lat_w[lat] = self.lat_w.get(lat, 0.0) + weight
        self.lon_w[lon] = self.lon_w.get(lon, 0.0) + weight
        # Weight added at the centre itself never moves a weighted median.
        return (lat != self.lat or lon != self.lon) and self.recentre()

    def recentre(self) -> bool:
        """Move the incident to the weighted median of its sightings (and its grid cell);
        returns whether it moved."""
        if not self.lat_w:
            return False  # no positioned sighting: matched per device
        lat, lon = weighted_median(self.lat_w), weighted_median(self.lon_w)
        if lat == self.lat and lon == self.lon:
            return False
        self.inc.position = Position(lat, lon)
        self.lat, self.lon = lat, lon
        if self.device is not None:
            return True
        grid = self.rules.open if self.inc.state == "open" else self.rules.closed
        cell = grid.cell(lat, lon)
        if cell != self.cell:
            grid.remove(self)
            self.cell = cell
            grid.add(self)
        return True

    def end_ts(self) -> float:
        """Until when the incident was alive by all its alerts: its deadline while open;
        once closed, its closing or, if later, where its latest alert (a straggler that came
        after it closed by event time) would have put its deadline."""
        if self.inc.state == "open":
            return self.deadline()
        rules = self.rules
        extra = 0.0 if self.inc.episodes <= self.ended else rules.window_s
        return max(self.closed_ts, self.span_ts + extra + rules.quiet_s)

    def deadline(self) -> float:
        rules = self.rules
        if self.inc.open_episodes:
            return self.last_ts + rules.window_s + rules.quiet_s
        return self.last_ts + rules.quiet_s


class CellGrid:
    """Incidents bucketed in cells at least ``radius_m`` wide: all within reach of a point
    lie in the cells overlapping its bounding box, usually 3 × 3 of them."""

    __slots__ = ("_dlon", "cells", "dlat", "radius_m")

    def __init__(self, radius_m: float) -> None:
        self.radius_m = radius_m
        self.dlat = radius_m / M_PER_DEG
        self._dlon: dict[int, float] = {}
        self.cells: dict[tuple[int, int], list[Slot]] = {}

    def _row_dlon(self, row: int) -> float:
        dlon = self._dlon.get(row)
        if dlon is None:
            edge = max(abs(row * self.dlat), abs((row + 1) * self.dlat))
            dlon = (
                360.0
                if edge >= POLAR_LAT
                else self.radius_m / (M_PER_DEG * math.cos(math.radians(edge)))
            )
            self._dlon[row] = dlon
        return dlon

    def cell(self, lat: float, lon: float) -> tuple[int, int]:
        row = math.floor(lat / self.dlat)
        return row, math.floor(lon / self._row_dlon(row))

    def add(self, slot: Slot) -> None:
        self.cells.setdefault(slot.cell, []).append(slot)

    def remove(self, slot: Slot) -> None:
        bucket = self.cells[slot.cell]
        bucket.remove(slot)
        if not bucket:
            del self.cells[slot.cell]

    def near(self, lat: float, lon: float, out: list[Slot]) -> None:
        """Append to ``out`` every incident in a cell that may hold points within reach."""
        cells = self.cells
        if not cells:
            return
        dlat = self.dlat
        reach = abs(lat) + dlat
        half = (
            360.0
            if reach >= POLAR_LAT
            else self.radius_m / (M_PER_DEG * math.cos(math.radians(reach)))
        )
        floor = math.floor
        for row in range(floor((lat - dlat) / dlat), floor((lat + dlat) / dlat) + 1):
            dlon = self._row_dlon(row)
            for col in range(floor((lon - half) / dlon), floor((lon + half) / dlon) + 1):
                bucket = cells.get((row, col))
                if bucket:
                    out.extend(bucket)


class KindRules:
    """One kind's policy in seconds, and its indexes of open and closed incidents."""

    __slots__ = (
        "by_device",
        "closed",
        "devices",
        "fold_reach_s",
        "latest_opened_ts",
        "open",
        "policy",
        "quiet_s",
        "radius_m",
        "reopen_s",
        "window_s",
    )

    def __init__(self, kind: AlertKind, policy: DedupPolicy) -> None:
        self.policy = policy
        self.radius_m = policy.radius_m
        self.window_s = policy.window.total_seconds()
        self.quiet_s = policy.quiet.total_seconds()
        self.reopen_s = policy.reopen.total_seconds()
        # How long after an incident's end another at its place is still the same problem
        # (a recurrence that reopens it; none when a recurrence is a new linked order).
        self.fold_reach_s = self.reopen_s if policy.recurrence == "reopen" else 0.0
        self.latest_opened_ts = -NEVER  # no incident of the kind opened later than this
        # A device fault is about the device, never about a place shared with others.
        self.by_device = kind is AlertKind.DEVICE_FAULT
        self.open = CellGrid(policy.radius_m)
        self.closed = CellGrid(policy.radius_m)
        self.devices: dict[str, list[Slot]] = {}  # open and closed, matched per device


SETTLED_SIGHTINGS = 3
"""Sightings an incident needs before a move of its centre alone may fold it into another
(one or two noisy boxes say little about where the problem is)."""
SETTLED_REACH = 0.5
"""Fraction of ``radius_m`` two settled centres must come within to fold: checked at every
sighting, the full radius would catch two neighbouring problems at a noisy moment."""


def overlapping(slot: Slot, t: float, moved_back: bool, settled: bool = False) -> Slot | None:
    """The oldest other incident of the kind within reach of ``slot`` that is the same
    problem — one opened before the other's end, or within ``reopen`` after it when a
    recurrence reopens — and that opened after ``t`` unless ``moved_back``, if any. With
    ``settled``, only incidents with :data:`SETTLED_SIGHTINGS` count (a centre moved)."""
    rules = slot.rules
    if not moved_back and t >= rules.latest_opened_ts:
        return None  # in order: nothing of the kind opened after this alert
    candidates: list[Slot] = []
    if slot.device is not None:
        candidates = rules.devices.get(slot.device, candidates)
    elif slot.inc.position is not None:
        rules.open.near(slot.lat, slot.lon, candidates)
        rules.closed.near(slot.lat, slot.lon, candidates)
    found: Slot | None = None
    for other in candidates:
        if other is slot or (found is not None and other.seq > found.seq):
            continue
        if not moved_back and other.opened_ts <= t:
            continue
        if settled and other.sightings < SETTLED_SIGHTINGS:
            continue
        reach_m = rules.radius_m * SETTLED_REACH if settled else rules.radius_m
        if slot.device is None and distance_m(slot.lat, slot.lon, other.lat, other.lon) > reach_m:
            continue
        first, then = (slot, other) if slot.opened_ts <= other.opened_ts else (other, slot)
        if then.opened_ts < first.end_ts() + rules.fold_reach_s:
            found = other
    return found
