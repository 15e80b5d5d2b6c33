"""Kafka keys that spread a city over the partitions, and which alerts may meet an incident
of another partition.

Alerts are keyed by the H3 cell of where they happened, at the resolution
:func:`key_resolution` picks from the site's largest dedup radius: cells whose edge is at
least :data:`KEY_CELL_RADII` radii, so only a thin strip along each border holds alerts
that can merge with one on the far side, yet small enough that a city is many keys (the
demo's 300 m smoke radius gives resolution 6, ~36 km² cells: a 40 × 40 km city touches 76
keys; resolution 5, used before, 15, and hot partitions). An alert with its own position (a
camera's box projected to the ground, a drone's shot) is keyed by that position, read from
its payload; other messages of fixed devices (telemetry, status: the bulk) by the device's
configured position, unparsed; a drone dock's by the position in the payload. Messages
without any position, and device faults (matched per device, not per place), are keyed by
device, which keeps each device's order.

Two alerts within a dedup radius on either side of a border land on two partitions, maybe
two workers. :func:`near_border` tells which alerts can: the disk of their kind's radius
around them is not inside their key's cell. Only those pay for the claim in the database
(:mod:`citywatch.stream.dedup_claim`): a lock on the :func:`claim_cells` around them, then a
look-up of the incidents another worker may hold there. An alert farther in than its radius
can only meet incidents centred in its own cell, which only alerts of its own key opened
(an alert's position lies in its key's cell), and which its worker therefore holds — read
again if a border alert of another worker extended one since (the incident's version).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

import h3

from citywatch.config import CitywatchConfig
from citywatch.config.workflow import DedupPolicy
from citywatch.contracts import Alert, AlertKind, Channel, TopicAddress
from citywatch.stream.dedup_index import M_PER_DEG

KEY_CELL_RADII = 10.0
"""A key cell's average edge is at least this many of the largest dedup radius."""
COARSEST_RESOLUTION = 5
FINEST_RESOLUTION = 8
"""Keys finer than this (~0.7 km²) would not balance 12 or 100 partitions any better."""
DevicePositions = Mapping[tuple[str, str], tuple[float, float]]


def key_resolution(policies: Iterable[DedupPolicy]) -> int:
    """The finest H3 resolution whose average edge is at least :data:`KEY_CELL_RADII` times
    the largest dedup radius, within :data:`COARSEST_RESOLUTION`..:data:`FINEST_RESOLUTION`."""
    largest_m = max((p.radius_m for p in policies), default=0.0)
    for resolution in range(FINEST_RESOLUTION, COARSEST_RESOLUTION, -1):
        if h3.average_hexagon_edge_length(resolution, "m") >= KEY_CELL_RADII * largest_m:
            return resolution
    return COARSEST_RESOLUTION


def device_positions(config: CitywatchConfig) -> dict[tuple[str, str], tuple[float, float]]:
    """(device kind, device id) → configured (lat, lon), for every placed device."""
    return {
        key: (place.position.lat, place.position.lon)
        for key, place in config.placements().items()
        if place.position is not None
    }


def key_cell(lat: float, lon: float, resolution: int) -> str:
    """The H3 cell (hex string) that keys a message at (lat, lon)."""
    return str(h3.latlng_to_cell(lat, lon, resolution))


def cell_key(lat: float, lon: float, resolution: int) -> bytes:
    return f"h3:{key_cell(lat, lon, resolution)}".encode()


def partition_key(
    address: TopicAddress, payload: bytes, positions: DevicePositions, resolution: int
) -> bytes:
    """The Kafka key of one uplink message (see the module docstring)."""
    if address.channel is Channel.ALERTS or address.device_kind == "dock":
        point = _payload_point(payload)
        if point is not None:
            return cell_key(*point, resolution)
    fixed = positions.get((address.device_kind, address.device_id))
    if fixed is not None:
        return cell_key(*fixed, resolution)
    return f"device:{address.site}/{address.device_kind}/{address.device_id}".encode()


def _payload_point(payload: bytes) -> tuple[float, float] | None:
    """An alert's (or a dock message's) own position, unless it is a device fault (matched
    per device)."""
    try:
        message = json.loads(payload)
        if message.get("kind") == "device_fault":
            return None
        location = message.get("location") or {}
        lat, lon = location.get("lat"), location.get("lon")
    except (ValueError, AttributeError):
        return None
    if (
        isinstance(lat, int | float)
        and isinstance(lon, int | float)
        and -90 <= lat <= 90
        and -180 <= lon <= 180
    ):
        return float(lat), float(lon)
    return None


def alert_key_cell(alert: Alert, positions: DevicePositions, resolution: int) -> str | None:
    """The cell the bridge keyed ``alert`` by (as :func:`partition_key` does from its
    payload), or None when it was keyed by device."""
    location = alert.location
    if (
        alert.kind is not AlertKind.DEVICE_FAULT
        and location.lat is not None
        and location.lon is not None
    ):
        return key_cell(location.lat, location.lon, resolution)
    fixed = positions.get((alert.device.kind.value, alert.device.id))
    return key_cell(*fixed, resolution) if fixed is not None else None


@lru_cache(maxsize=4096)
def _boundary(cell: str) -> tuple[tuple[float, float], ...]:
    return tuple(h3.cell_to_boundary(cell))


def distance_to_border_m(lat: float, lon: float, cell: str) -> float:
    """Metres from (lat, lon) to the nearest edge of ``cell``; negative when the point lies
    outside it (local equirectangular projection: cells are kilometres, radii metres)."""
    x_per_deg = M_PER_DEG * math.cos(math.radians(lat))
    corners = [
        ((c_lon - lon) * x_per_deg, (c_lat - lat) * M_PER_DEG) for c_lat, c_lon in _boundary(cell)
    ]
    nearest = min(
        _segment_distance(corners[i], corners[(i + 1) % len(corners)]) for i in range(len(corners))
    )
    inside = h3.latlng_to_cell(lat, lon, h3.get_resolution(cell)) == cell
    return nearest if inside else -nearest


def _segment_distance(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Distance from the origin to the segment a–b (plane metres)."""
    (ax, ay), (bx, by) = a, b
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, -(ax * dx + ay * dy) / length2))
    return math.hypot(ax + t * dx, ay + t * dy)


def near_border(lat: float, lon: float, radius_m: float, cell: str | None) -> bool:
    """Whether an alert at (lat, lon) keyed by ``cell`` (None: keyed by device) may merge
    with an incident another partition holds: its radius reaches out of its key's cell."""
    if cell is None:
        return True
    return distance_to_border_m(lat, lon, cell) <= radius_m


CLAIM_CELL_RADII = 2.0
"""Claims lock H3 cells whose average edge is at least this many radii of the alert's kind,
so the disk of the radius around a point stays within the point's cell and its six
neighbours (the ring around a cell is √3 edges thick; H3 edges vary well under 2×)."""


def claim_resolution(radius_m: float) -> int:
    """The finest H3 resolution whose average edge is :data:`CLAIM_CELL_RADII` radii."""
    for resolution in range(15, 0, -1):
        if h3.average_hexagon_edge_length(resolution, "m") >= CLAIM_CELL_RADII * radius_m:
            return resolution
    return 0


@dataclass(frozen=True)
class Claim:
    """What a worker takes in the database before placing an alert near a border: advisory
    locks on ``locks``, then the incidents of ``box`` (kind, south, north, west, east)."""

    kind: str
    locks: tuple[int, ...]
    box: tuple[str, float, float, float, float]


def claim_of(kind: str, lat: float, lon: float, radius_m: float, cell: str | None) -> Claim | None:
    """The claim an alert of ``kind`` at (lat, lon) keyed by ``cell`` needs, or None when it
    lies farther than ``radius_m`` inside its cell (no other partition holds what it can
    meet)."""
    if not near_border(lat, lon, radius_m, cell):
        return None
    dlat = radius_m / M_PER_DEG
    dlon = radius_m / (M_PER_DEG * _cos_deg(abs(lat) + dlat))
    box = (kind, lat - dlat, lat + dlat, lon - dlon, lon + dlon)
    return Claim(kind, tuple(claim_cells(kind, lat, lon, radius_m)), box)


def claim_cells(kind: str, lat: float, lon: float, radius_m: float) -> list[int]:
    """The advisory-lock ids of the H3 cell at (lat, lon) and its six neighbours, at the
    :func:`claim_resolution` of ``radius_m``, per kind; sorted (one order for every worker:
    no deadlock).

    Two alerts of a kind within a radius of one incident centre both lock the cell that
    centre lies in (their own or a neighbour), so their claims meet and one worker waits
    for the other's commit.
    """
    cell = h3.latlng_to_cell(lat, lon, claim_resolution(radius_m))
    return sorted({_lock_id(f"{kind}:{ring}") for ring in h3.grid_disk(cell, 1)})


def kind_lock(kind: str) -> int:
    """The advisory-lock id above every claim of ``kind``: taken shared by a claim of a few
    cells, exclusive by a claim of more than a transaction should lock one by one."""
    return _lock_id(f"{kind}:*")


def _cos_deg(lat: float) -> float:
    """cos(lat), kept off zero near the poles (a box there spans every longitude)."""
    return max(math.cos(math.radians(min(lat, 89.9))), 1e-3)


def _lock_id(name: str) -> int:
    """A signed 64-bit advisory lock id for ``name`` (PostgreSQL's bigint)."""
    return int.from_bytes(
        hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True
    )
