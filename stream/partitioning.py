"""Kafka keys that keep every alert that could merge into one work order on one partition.

Alerts are keyed by a coarse H3 cell of where they happened (resolution 5: cells of about
250 km², far larger than any dedup radius), so one Faust worker sees all alerts that can
merge. Fixed devices are placed by their configured position (no payload parsing on the hot
path); drone docks move, so their alerts are placed by the position in the payload.
Two alerts within a dedup radius but on either side of a cell border land on different
partitions: with one partition (the embedded stack) nothing changes; with several workers
they may open two work orders for one problem. Cells this large make that rare; merging
across partitions in the database is not built yet.
Messages without any position are keyed by device, which keeps each device's order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import h3

from citywatch.config import CitywatchConfig
from citywatch.contracts import TopicAddress

H3_RESOLUTION = 5
DevicePositions = Mapping[tuple[str, str], tuple[float, float]]


def device_positions(config: CitywatchConfig) -> dict[tuple[str, str], tuple[float, float]]:
    """(device kind, device id) → configured (lat, lon), for every placed device."""
    return {
        key: (place.position.lat, place.position.lon)
        for key, place in config.placements().items()
        if place.position is not None
    }


def cell_key(lat: float, lon: float) -> bytes:
    return f"h3:{h3.latlng_to_cell(lat, lon, H3_RESOLUTION)}".encode()


def partition_key(address: TopicAddress, payload: bytes, positions: DevicePositions) -> bytes:
    """The Kafka key of one uplink message (see the module docstring)."""
    if address.device_kind == "dock":
        point = _payload_point(payload)
        if point is not None:
            return cell_key(*point)
    fixed = positions.get((address.device_kind, address.device_id))
    if fixed is not None:
        return cell_key(*fixed)
    return f"device:{address.site}/{address.device_kind}/{address.device_id}".encode()


def _payload_point(payload: bytes) -> tuple[float, float] | None:
    try:
        location = json.loads(payload).get("location") or {}
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
