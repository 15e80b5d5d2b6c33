"""Waterlogging level logic: distance readings become depths, depths become level changes.

Pure: no I/O and no wall clock. Every reading carries its own time, so a replay of recorded
readings yields exactly the changes the live run produced. The Modbus/LoRaWAN/simulated
shells read the sensor; this module only decides what the readings mean.

Ultrasonic sensors chatter (±1 cm noise, a passing vehicle's bow wave), so a level is left
only after the depth falls ``hysteresis_cm`` below it, and any change must hold for
``min_duration`` before it is reported (DOMAIN.md, waterlogging sensors).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from citywatch.config.sensor import LevelPolicy

__all__ = ["LevelChange", "LevelTracker", "depth_from_distance"]

_DRY = -1
"""Level index of a dry road (below the first level)."""


def depth_from_distance(
    distance_mm: float, mount_height_cm: float, blind_zone_cm: float
) -> float | None:
    """Water depth under a sensor mounted ``mount_height_cm`` above the dry road surface.

    Returns ``None`` for a reading that cannot be trusted: negative, NaN or infinite, or
    shorter than the blind zone (the echo returns before the transducer stops ringing, so
    the sensor reports nonsense). A distance longer than the mount height (a pothole, a
    slanted echo) reads as dry rather than as negative depth.
    """
    if not math.isfinite(distance_mm) or distance_mm < 0:
        return None
    if distance_mm < blind_zone_cm * 10:
        return None
    deepest_cm = max(0.0, mount_height_cm - blind_zone_cm)
    depth_cm = mount_height_cm - distance_mm / 10
    return min(max(depth_cm, 0.0), deepest_cm)


@dataclass(frozen=True)
class LevelChange:
    """A confirmed change of a sensor's level; each one becomes one alert message."""

    phase: Literal["start", "update", "end"]
    """start: first level entered from dry; update: level changed while wet; end: receded
    below the first level."""
    level: str | None
    """The new level's name (``None`` on end: the road is dry again)."""
    previous: str | None
    """The level left (``None`` on start: the road was dry)."""
    depth_cm: float
    """Depth at the reading that confirmed the change."""
    peak_depth_cm: float
    """Deepest reading of this episode so far (the whole episode on end)."""
    time: datetime
    """Time of the confirming reading, aware UTC."""
    since: datetime
    """When the new level first held; ``time - since >= min_duration``."""


@dataclass(frozen=True)
class _Pending:
    """A level change seen but not yet held for ``min_duration``."""

    index: int
    since: datetime


class LevelTracker:
    """Follows one sensor's depth and reports level changes that held long enough.

    Going up into a level needs ``depth >= level.depth_cm``; going down out of it needs
    ``depth < level.depth_cm - hysteresis_cm``. A new target level must hold continuously
    for ``policy.min_duration`` (measured with the readings' times); if the target changes
    meanwhile, the wait starts again for the new target, so a jump from one level straight
    to another within ``min_duration`` is reported once, at the final level.

    Subclasses may smooth readings (a median spike filter) by overriding :meth:`_filter`.
    """

    def __init__(self, policy: LevelPolicy) -> None:
        self.policy = policy
        self._index = _DRY
        self._pending: _Pending | None = None
        self._depth_cm: float | None = None
        self._last_time: datetime | None = None
        self._peak_cm: float | None = None

    @property
    def level(self) -> str | None:
        """The confirmed level's name, or ``None`` while the road is dry."""
        return self._name(self._index)

    @property
    def depth_cm(self) -> float | None:
        """The last filtered depth, or ``None`` before the first reading."""
        return self._depth_cm

    def holding(self, time: datetime) -> LevelChange | None:
        """The confirmed level again, as an update at ``time`` (a sustained flood: nothing
        changed, but the stream must hear that it is still there); ``None`` while dry."""
        if self._index == _DRY or self._depth_cm is None:
            return None
        name = self._name(self._index)
        peak_cm = self._depth_cm if self._peak_cm is None else self._peak_cm
        return LevelChange(
            phase="update",
            level=name,
            previous=name,
            depth_cm=self._depth_cm,
            peak_depth_cm=peak_cm,
            time=time,
            since=time,
        )

    def observe(
        self, time: datetime, depth_cm: float, *, since: datetime | None = None
    ) -> LevelChange | None:
        """Take one reading; return the level change it confirms, if any.

        ``since`` dates the depth earlier than ``time`` when a filter already held it back
        (a running median describes its window's middle reading): a new pending level then
        counts its ``min_duration`` from ``since``. It defaults to ``time``.

        Raises ``ValueError`` for a naive time, a time earlier than the previous reading
        (the duration rule would be meaningless) or a NaN depth (skip unreliable readings
        before calling: :func:`depth_from_distance` returns ``None`` for them).
        """
        if time.tzinfo is None or time.utcoffset() is None:
            raise ValueError(f"reading time {time.isoformat()} has no timezone: pass aware UTC")
        time = time.astimezone(UTC)
        if self._last_time is not None and time < self._last_time:
            raise ValueError(
                f"reading time {time.isoformat()} is before the previous reading "
                f"{self._last_time.isoformat()}: feed readings in time order"
            )
        if math.isnan(depth_cm):
            raise ValueError("depth_cm is NaN: drop unreliable readings before observe()")
        self._last_time = time
        seen = time if since is None else min(since.astimezone(UTC), time)
        depth_cm = self._filter(time, depth_cm)
        self._depth_cm = depth_cm

        target = self._target(depth_cm)
        if target == self._index:
            self._pending = None
        elif self._pending is None or self._pending.index != target:
            self._pending = _Pending(index=target, since=seen)
        self._track_peak(depth_cm, target)

        pending = self._pending
        if pending is None or time - pending.since < self.policy.min_duration:
            return None
        return self._confirm(pending, time, depth_cm)

    def _filter(self, time: datetime, depth_cm: float) -> float:
        """The depth the level rule sees; identity here, a spike filter may override it."""
        return depth_cm

    def _target(self, depth_cm: float) -> int:
        """The level index this depth points to, given the confirmed level and hysteresis."""
        levels = self.policy.levels
        up = _DRY
        for index, level in enumerate(levels):
            if depth_cm >= level.depth_cm:
                up = index
        if up >= self._index:
            return up
        # Going down: stay in the highest level at or below the current one that the depth
        # has not yet left by the hysteresis margin.
        hysteresis = self.policy.hysteresis_cm
        down = _DRY
        for index in range(self._index + 1):
            if depth_cm >= levels[index].depth_cm - hysteresis:
                down = index
        return down

    def _track_peak(self, depth_cm: float, target: int) -> None:
        """Keep the episode's deepest reading, counting from when the water first rose."""
        if self._index == _DRY and target == _DRY:
            self._peak_cm = None
        else:
            self._peak_cm = depth_cm if self._peak_cm is None else max(self._peak_cm, depth_cm)

    def _confirm(self, pending: _Pending, time: datetime, depth_cm: float) -> LevelChange:
        previous = self._index
        peak_cm = depth_cm if self._peak_cm is None else self._peak_cm
        phase: Literal["start", "update", "end"]
        if previous == _DRY:
            phase = "start"
        elif pending.index == _DRY:
            phase = "end"
            self._peak_cm = None
        else:
            phase = "update"
        self._index = pending.index
        self._pending = None
        return LevelChange(
            phase=phase,
            level=self._name(pending.index),
            previous=self._name(previous),
            depth_cm=depth_cm,
            peak_depth_cm=peak_cm,
            time=time,
            since=pending.since,
        )

    def _name(self, index: int) -> str | None:
        return None if index == _DRY else self.policy.levels[index].name
