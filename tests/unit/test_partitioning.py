"""Kafka keys for scale-out (issue 21): the key resolution follows the dedup radius, keys
the bridge gives and the worker recomputes agree, and only alerts near a key cell's border
claim their place — with claims that meet whenever two alerts can merge."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import h3
import pytest

from citywatch.config import CitywatchConfig
from citywatch.config.services import KafkaService
from citywatch.config.workflow import DedupPolicy
from citywatch.contracts import Alert, AlertKind, DeviceRef, Location, encode
from citywatch.contracts.topics import Channel
from citywatch.stream.dedup import M_PER_DEG, Position
from citywatch.stream.partitioning import (
    COARSEST_RESOLUTION,
    FINEST_RESOLUTION,
    KEY_CELL_RADII,
    alert_key_cell,
    claim_cells,
    claim_of,
    device_positions,
    distance_to_border_m,
    key_cell,
    key_resolution,
    near_border,
    partition_key,
)

T0 = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
CENTRE = Position(31.4300, 119.4800)  # the demo district's centre


def offset(origin: Position, north_m: float = 0.0, east_m: float = 0.0) -> Position:
    """The point ``north_m`` north and ``east_m`` east of ``origin``."""
    lat = origin.lat + north_m / M_PER_DEG
    lon = origin.lon + east_m / (M_PER_DEG * math.cos(math.radians(lat)))
    return Position(lat, lon)


def straddling_points(
    near: Position, resolution: int, apart_m: float, count: int, along: float = 0.5
) -> list[tuple[Position, Position]]:
    """``count`` pairs of points ``apart_m`` apart on either side of a border between two
    key cells, on the borders of the cell at ``near`` and its neighbours: the point
    ``along`` each shared edge, stepped ``apart_m / 2`` towards each cell's centre."""
    home = h3.latlng_to_cell(near.lat, near.lon, resolution)
    pairs = []
    for other in sorted(h3.grid_ring(home, 1)):
        (a_lat, a_lon), (b_lat, b_lon) = h3.directed_edge_to_boundary(
            h3.cells_to_directed_edge(home, other)
        )
        middle = Position(a_lat + (b_lat - a_lat) * along, a_lon + (b_lon - a_lon) * along)
        sides = []
        for cell in (home, other):
            c_lat, c_lon = h3.cell_to_latlng(cell)
            north = (c_lat - middle.lat) * M_PER_DEG
            east = (c_lon - middle.lon) * M_PER_DEG * math.cos(math.radians(middle.lat))
            scale = apart_m / 2 / math.hypot(north, east)
            sides.append(offset(middle, north * scale, east * scale))
        pairs.append((sides[0], sides[1]))
    return pairs[:count]


def dock_alert(alert_id: str, at: Position, kind: AlertKind = AlertKind.SMOKE) -> Alert:
    return Alert(
        id=alert_id, episode_id=alert_id, seq=0,
        device=DeviceRef(site="demo", kind="dock", id="dock-chengxi-01"),
        kind=kind, rule="patrol", phase="start", event_time=T0,
        location=Location(lat=at.lat, lon=at.lon), confidence=0.8,
    )  # fmt: skip


def test_key_resolution_is_the_finest_whose_cells_are_ten_radii_across() -> None:
    """The demo's 300 m smoke radius keys by resolution 6 (3.7 km edges), not 5."""
    policies = [DedupPolicy(radius_m=r, window=timedelta(minutes=30)) for r in (15, 100, 300)]
    resolution = key_resolution(policies)
    assert resolution == 6
    assert h3.average_hexagon_edge_length(resolution, "m") >= KEY_CELL_RADII * 300
    assert h3.average_hexagon_edge_length(resolution + 1, "m") < KEY_CELL_RADII * 300


@pytest.mark.parametrize(
    ("radius_m", "expected"), [(1, FINEST_RESOLUTION), (5000, COARSEST_RESOLUTION), (50, 8)]
)
def test_key_resolution_stays_within_its_bounds(radius_m: float, expected: int) -> None:
    """Tiny radii stop at resolution 8, huge ones at 5."""
    assert key_resolution([DedupPolicy(radius_m=radius_m, window=timedelta(hours=1))]) == expected


def test_a_city_spreads_over_many_keys_at_the_demo_resolution() -> None:
    """A 40 × 40 km city at resolution 6 touches 76 keys (15 at the old resolution 5)."""
    corner = offset(CENTRE, -20_000, -20_000)
    cells = {
        key_cell(*(lambda p: (p.lat, p.lon))(offset(corner, n * 500, e * 500)), 6)
        for n in range(81)
        for e in range(81)
    }
    assert len(cells) >= 70


def test_worker_recomputes_the_key_cell_the_bridge_gave(demo_config: CitywatchConfig) -> None:
    """An alert with a position by that position, one without by its device's."""
    positions = device_positions(demo_config)
    camera = DeviceRef(site="demo", kind="camera", id="cam-renmin-101")
    projected = dock_alert("c.1", offset(CENTRE, 2000, 2000)).model_copy(update={"device": camera})
    unpositioned = projected.model_copy(update={"id": "c.2", "location": Location(zone="curb")})
    dock = dock_alert("d.1", offset(CENTRE, -2000, 2000))
    for alert in (projected, unpositioned, dock):
        address = alert.device.address(Channel.ALERTS)
        key = partition_key(address, encode(alert), positions, 6)
        assert key == f"h3:{alert_key_cell(alert, positions, 6)}".encode()
    at = offset(CENTRE, 2000, 2000)
    assert alert_key_cell(projected, positions, 6) == key_cell(at.lat, at.lon, 6)
    assert alert_key_cell(unpositioned, positions, 6) == key_cell(31.4309, 119.4815, 6)


def test_device_faults_and_unplaced_devices_without_a_position_are_keyed_by_device() -> None:
    """A fault is matched per device, so the device's moving position must not split them."""
    fault = dock_alert("f.1", CENTRE, kind=AlertKind.DEVICE_FAULT)
    address = fault.device.address(Channel.ALERTS)
    assert partition_key(address, encode(fault), {}, 6) == b"device:demo/dock/dock-chengxi-01"
    assert alert_key_cell(fault, {}, 6) is None
    unplaced = dock_alert("u.1", CENTRE).model_copy(
        update={
            "device": DeviceRef(site="demo", kind="camera", id="cam-x"),
            "location": Location(zone="curb"),
        }
    )
    assert alert_key_cell(unplaced, {}, 6) is None
    assert near_border(CENTRE.lat, CENTRE.lon, 15, None)  # keyed by device: always claims


def test_distance_to_border_is_positive_inside_and_negative_outside() -> None:
    """Measured from the cell centre it is about the inradius; outside the cell it is negative."""
    cell = key_cell(CENTRE.lat, CENTRE.lon, 6)
    c_lat, c_lon = h3.cell_to_latlng(cell)
    inradius = distance_to_border_m(c_lat, c_lon, cell)
    edge = h3.average_hexagon_edge_length(6, "m")
    assert 0.7 * edge < inradius < edge
    far = h3.cell_to_latlng(h3.grid_ring(cell, 2)[0])
    assert distance_to_border_m(*far, cell) < 0


def test_only_alerts_within_their_radius_of_a_border_claim() -> None:
    """The cell centre claims nothing; a point 5 m from a border claims for 15 m, not for 1 m."""
    cell = key_cell(CENTRE.lat, CENTRE.lon, 6)
    c_lat, c_lon = h3.cell_to_latlng(cell)
    assert claim_of("smoke", c_lat, c_lon, 300, cell) is None
    inside, _ = straddling_points(Position(c_lat, c_lon), 6, 10, 1)[0]
    assert h3.latlng_to_cell(inside.lat, inside.lon, 6) == cell
    claim = claim_of("illegal_parking", inside.lat, inside.lon, 15, cell)
    assert claim is not None and claim.locks and claim.box[0] == "illegal_parking"
    assert claim_of("illegal_parking", inside.lat, inside.lon, 1, cell) is None


def test_a_camera_box_projected_outside_its_key_cell_claims() -> None:
    """The camera's key is its mount's cell; a box beyond the border is out of that cell."""
    cell = key_cell(CENTRE.lat, CENTRE.lon, 6)
    _, outside = straddling_points(CENTRE, 6, 2, 1)[0]
    assert claim_of("illegal_parking", outside.lat, outside.lon, 0.5, cell) is not None


def test_claims_of_two_alerts_that_can_merge_share_a_lock() -> None:
    """Any two points within a radius of one centre lock a cell in common (random pairs)."""
    rng = random.Random(21)
    for _ in range(2000):
        radius = rng.choice([1, 15, 100, 300])
        centre = offset(CENTRE, rng.uniform(-5e4, 5e4), rng.uniform(-5e4, 5e4))
        a, b = (
            offset(centre, *(radius * rng.random() * f(t) for f in (math.sin, math.cos)))
            for t in (rng.uniform(0, 2 * math.pi), rng.uniform(0, 2 * math.pi))
        )
        shared = set(claim_cells("smoke", a.lat, a.lon, radius)) & set(
            claim_cells("smoke", b.lat, b.lon, radius)
        )
        assert shared, (radius, a, b)


def test_claims_are_sorted_and_per_kind() -> None:
    """Sorted, so every worker locks in one order; kinds never wait on each other."""
    parking = claim_cells("illegal_parking", CENTRE.lat, CENTRE.lon, 15)
    assert parking == sorted(parking) and len(parking) == 7  # a cell and its six neighbours
    assert not set(parking) & set(claim_cells("street_vending", CENTRE.lat, CENTRE.lon, 15))


def test_straddling_points_lie_in_two_cells_within_the_radius() -> None:
    """The helper the scale-out test uses: each pair in two key cells, ``apart_m`` apart."""
    for a, b in straddling_points(CENTRE, 6, 8, 6):
        assert key_cell(a.lat, a.lon, 6) != key_cell(b.lat, b.lon, 6)
        dy = (a.lat - b.lat) * M_PER_DEG
        dx = (a.lon - b.lon) * M_PER_DEG * math.cos(math.radians(a.lat))
        assert math.hypot(dx, dy) == pytest.approx(8, abs=0.1)


def test_kafka_durability_settings_that_contradict_are_refused() -> None:
    """min ISR above the replication factor, or idempotence without acks=all."""
    assert KafkaService(bootstrap="k1:9092", replication_factor=3, min_insync_replicas=2)
    with pytest.raises(ValueError, match="min_insync_replicas 2 is more than"):
        KafkaService(bootstrap="k1:9092", min_insync_replicas=2)
    with pytest.raises(ValueError, match="idempotent_producer needs acks: all"):
        KafkaService(bootstrap="k1:9092", acks=1, idempotent_producer=True)
