"""Incidents: what the dedup engine builds from alerts, and where an alert happened.

The engine's public values (:mod:`citywatch.stream.dedup` decides, this module only names
what it decides about): an incident with everything its alerts told, the result of placing
one alert, and the resolution of an alert's position from its own point or its device's.
Imported by the work-order store and the replay as well as the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from citywatch.config.site import Placement
from citywatch.contracts.messages import Alert, AlertKind, DeviceKind, DeviceRef


@dataclass(frozen=True, slots=True)
class Position:
    """A WGS84 point."""

    lat: float
    lon: float


@dataclass
class Incident:
    """One problem in the world, built from every alert that reported it.

    ``position`` is the robust centre of its sightings: the weighted median, latitude and
    longitude apart, of every positioned alert (weights from each sighting's accuracy, see
    :func:`sighting_weight`), so one badly projected box moves it little and a chain of
    sightings cannot drag it far; ``None`` when its first alert had no position. ``level`` is the water level of the latest alert by event time
    that reported one; ``attributes`` holds the alert attributes of the latest alert
    by event time (e.g. ``depth_cm``), plus ``peak_depth_cm`` (the largest
    ``depth_cm`` or ``peak_depth_cm`` any alert carried) and, once closed, ``closed_by``
    (``"ended"``: all episodes ended and the quiet period passed; ``"aged_out"``: no message
    for window + quiet, the open episodes are then abandoned).
    """

    id: str
    kind: AlertKind
    position: Position | None
    opened_at: datetime
    last_activity: datetime
    closed_at: datetime | None = None
    state: Literal["open", "closed"] = "open"
    episodes: set[str] = field(default_factory=set)
    open_episodes: set[str] = field(default_factory=set)
    alert_ids: list[str] = field(default_factory=list)
    sources: set[str] = field(default_factory=set)
    reopen_count: int = 0
    max_confidence: float = 0.0
    level: str | None = None
    attributes: dict[str, object] = field(default_factory=dict)
    recurrence_of: str | None = None
    merged_into: str | None = None
    version: int = 0
    """The stored ``incident_version`` this copy was read or last written at (0: never
    stored); another worker's write moves the row on, and this copy is then stale."""


@dataclass(frozen=True, slots=True)
class DedupResult:
    """Where one alert went. Exactly one of ``created``, ``merged`` and ``duplicate`` is
    true; ``reopened`` implies ``merged``. ``incident`` is the engine's live object: copy what
    you need before the next call. ``absorbed``: incidents this alert showed to be part of
    ``incident`` (late data), folded into it; each keeps its alert ids and has
    ``merged_into`` set, for the caller to move their alerts and close their work orders.
    """

    incident: Incident
    created: bool
    merged: bool
    reopened: bool
    duplicate: bool
    absorbed: tuple[Incident, ...] = ()


ACCURACY_M: Mapping[DeviceKind, float] = {
    DeviceKind.SENSOR: 1.0,  # a fixed sensor at its surveyed position
    DeviceKind.CAMERA: 3.0,  # a box projected to the ground: metres of projection noise
    DeviceKind.DOCK: 20.0,  # a drone's shot position and gimbal: tens of metres
    DeviceKind.GATEWAY: 10.0,
}
"""Position accuracy per device kind, when an alert does not give its own ``accuracy_m``."""

MIN_ACCURACY_M = 0.5
"""Below this an accuracy adds no weight (a surveyed point and a GPS fix are both exact)."""


def sighting_weight(alert: Alert) -> float:
    """How much one alert's position counts in its incident's centre: 1 / accuracy in
    metres (the alert's ``location.accuracy_m``, else its device kind's)."""
    accuracy = alert.location.accuracy_m
    if accuracy is None:
        accuracy = ACCURACY_M.get(alert.device.kind, 10.0)
    return 1.0 / max(accuracy, MIN_ACCURACY_M)


def weighted_median(values: Mapping[float, float]) -> float:
    """The weighted median of ``values`` (value → total weight): the smallest value with at
    least half the weight at or below it, or the midpoint of it and the next one when
    exactly half is (two sightings: halfway). The same for any order of sightings."""
    total = sum(values.values())
    running = 0.0
    ordered = sorted(values.items())
    for n, (value, weight) in enumerate(ordered):
        running += weight
        if running * 2 >= total:
            if running * 2 == total and n + 1 < len(ordered):
                return (value + ordered[n + 1][0]) / 2
            return value
    return ordered[-1][0]


def alert_position(
    alert: Alert, placements: Mapping[tuple[str, str], Placement]
) -> Position | None:
    """Where an alert happened: its own point (a drone's shot position, a projected box),
    else its device's configured position (a fixed camera or sensor), else unknown.
    ``placements`` is :meth:`CitywatchConfig.placements`.
    """
    location = alert.location
    if location.lat is not None and location.lon is not None:
        return Position(location.lat, location.lon)
    place = placements.get((alert.device.kind.value, alert.device.id))
    if place is None or place.position is None:
        return None
    return Position(place.position.lat, place.position.lon)


def device_key(device: DeviceRef) -> str:
    """``site/kind/id``: how an incident names the devices that contributed to it."""
    return f"{device.site}/{device.kind.value}/{device.id}"
