"""Sensor-fault detection: when a water-level unit's readings stop being trustworthy (pure).

Faults raise ``device_fault`` alerts for the operations IT department, never flood alerts,
and while one that makes readings untrustworthy lasts (stuck, out of range, erratic,
silent) the level logic stops listening to the sensor. Each fault has its own lifecycle,
start when detected and end when it clears, so a ticket closes itself when the unit
recovers. Times are the readings' own; silence is checked against a time the caller passes.

- **stuck**: the distance has not changed (within a tolerance) for ``stuck_after``;
- **out_of_range**: ``out_of_range_after`` unusable readings in a row (inside the blind zone,
  far beyond the mount height, not a number, or flagged invalid by the unit);
- **silent**: no reading for ``silent_after`` (a dropout, a dead radio, a cut cable);
- **battery_low**: below ``battery_low_pct``, cleared above ``battery_ok_pct``;
- **erratic**: more than ``erratic_fraction`` of the last readings jumped by more than
  ``erratic_spike_cm`` from the reading before (occasional spikes are only filtered; a unit
  that spikes all the time needs cleaning); it clears after a whole window without a jump.
  Jumps between consecutive readings, not distance from a running median: when spikes are
  the majority, the median is a spike itself.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from citywatch.config.sensor import FaultPolicy

__all__ = ["UNTRUSTED", "FaultChange", "FaultDetector", "FaultType"]

FaultType = Literal["stuck", "out_of_range", "silent", "battery_low", "erratic"]
UNTRUSTED: frozenset[str] = frozenset({"stuck", "out_of_range", "silent", "erratic"})
"""Faults during which readings must not drive level or rate-of-rise alerts."""


@dataclass(frozen=True)
class FaultChange:
    """A fault detected (start) or cleared (end); each becomes one device-fault alert message."""

    fault: FaultType
    phase: Literal["start", "end"]
    time: datetime
    since: datetime
    """start: when the condition began; end: when the fault was raised."""
    detail: str


class FaultDetector:
    """Watches one sensor's raw readings for the faults of :class:`FaultPolicy`."""

    def __init__(
        self,
        policy: FaultPolicy,
        *,
        mount_height_cm: float,
        blind_zone_cm: float,
        sample_interval: timedelta,
        started_at: datetime,
    ) -> None:
        self.policy = policy
        self._min_mm = blind_zone_cm * 10
        self._max_mm = (mount_height_cm + policy.max_distance_margin_cm) * 10
        self._silent_after = policy.silent_after_for(sample_interval)
        self._active: dict[FaultType, datetime] = {}
        self._last_reading: datetime = started_at.astimezone(UTC)
        self._stuck_value: float | None = None
        self._stuck_since: datetime | None = None
        self._bad_run = 0
        self._good_run = 0
        self._bad_since: datetime | None = None
        self._spikes: deque[bool] = deque(maxlen=policy.erratic_window)
        self._last_usable_mm: float | None = None

    @property
    def active(self) -> frozenset[str]:
        """The faults in effect now."""
        return frozenset(self._active)

    @property
    def trusted(self) -> bool:
        """Whether readings may drive the level and rate-of-rise logic."""
        return not (UNTRUSTED & self._active.keys())

    def usable(self, distance_mm: float, flagged_invalid: bool) -> bool:
        """Whether one reading can be a distance to water at all."""
        return (
            not flagged_invalid
            and math.isfinite(distance_mm)
            and self._min_mm <= distance_mm <= self._max_mm
        )

    def observe(
        self,
        time: datetime,
        distance_mm: float,
        battery_pct: float | None,
        flagged_invalid: bool,
    ) -> list[FaultChange]:
        """Take one reading; return the faults it starts or ends."""
        time = time.astimezone(UTC)
        changes: list[FaultChange] = []
        self._last_reading = time
        self._end("silent", time, "readings resumed", changes)
        usable = self.usable(distance_mm, flagged_invalid)
        self._check_range(time, distance_mm, flagged_invalid, usable, changes)
        if usable:
            self._check_stuck(time, distance_mm, changes)
            if self._last_usable_mm is not None:
                jump_cm = abs(distance_mm - self._last_usable_mm) / 10
                self._check_erratic(time, jump_cm, changes)
            self._last_usable_mm = distance_mm
        if battery_pct is not None and math.isfinite(battery_pct):
            if battery_pct < self.policy.battery_low_pct:
                self._start("battery_low", time, time, f"battery at {battery_pct:.0f}%", changes)
            elif battery_pct > self.policy.battery_ok_pct:
                self._end("battery_low", time, f"battery at {battery_pct:.0f}%", changes)
        return changes

    def check_silence(self, now: datetime) -> list[FaultChange]:
        """Raise ``silent`` once no reading has arrived for ``silent_after`` before ``now``."""
        changes: list[FaultChange] = []
        now = now.astimezone(UTC)
        if "silent" not in self._active and now - self._last_reading >= self._silent_after:
            self._start(
                "silent",
                now,
                self._last_reading,
                f"no reading for {(now - self._last_reading).total_seconds():.0f}s"
                f" (limit {self._silent_after.total_seconds():.0f}s)",
                changes,
            )
        return changes

    # -- the checks ---------------------------------------------------------------------------
    def _check_range(
        self,
        time: datetime,
        distance_mm: float,
        flagged_invalid: bool,
        usable: bool,
        changes: list[FaultChange],
    ) -> None:
        needed = self.policy.out_of_range_after
        if usable:
            self._bad_run = 0
            self._bad_since = None
            self._good_run += 1
            if self._good_run >= needed:
                self._end("out_of_range", time, f"distance {distance_mm:.0f} mm", changes)
            return
        self._good_run = 0
        self._bad_run += 1
        if self._bad_since is None:
            self._bad_since = time
        if self._bad_run >= needed:
            why = (
                "the unit flagged its measurement invalid"
                if flagged_invalid
                else f"distance {distance_mm} mm outside {self._min_mm:.0f}–{self._max_mm:.0f} mm"
            )
            self._start("out_of_range", time, self._bad_since, why, changes)

    def _check_stuck(self, time: datetime, distance_mm: float, changes: list[FaultChange]) -> None:
        if (
            self._stuck_value is not None
            and self._stuck_since is not None
            and abs(distance_mm - self._stuck_value) <= self.policy.stuck_tolerance_mm
        ):
            if time - self._stuck_since >= self.policy.stuck_after:
                self._start(
                    "stuck",
                    time,
                    self._stuck_since,
                    f"distance {distance_mm:.0f} mm unchanged since {self._stuck_since.isoformat()}",
                    changes,
                )
            return
        self._stuck_value = distance_mm
        self._stuck_since = time
        self._end("stuck", time, f"distance changed to {distance_mm:.0f} mm", changes)

    def _check_erratic(
        self, time: datetime, deviation_cm: float, changes: list[FaultChange]
    ) -> None:
        self._spikes.append(deviation_cm > self.policy.erratic_spike_cm)
        if len(self._spikes) < self._spikes.maxlen:  # type: ignore[operator]
            return
        fraction = sum(self._spikes) / len(self._spikes)
        if fraction > self.policy.erratic_fraction:
            self._start(
                "erratic", time, time, f"{fraction:.0%} of the last readings were spikes", changes
            )
        elif fraction == 0:
            self._end(
                "erratic", time, f"no spike in the last {len(self._spikes)} readings", changes
            )

    # -- lifecycle ----------------------------------------------------------------------------
    def _start(
        self,
        fault: FaultType,
        time: datetime,
        since: datetime,
        detail: str,
        changes: list[FaultChange],
    ) -> None:
        if fault not in self._active:
            self._active[fault] = time
            changes.append(FaultChange(fault, "start", time, since, detail))

    def _end(
        self, fault: FaultType, time: datetime, detail: str, changes: list[FaultChange]
    ) -> None:
        raised = self._active.pop(fault, None)
        if raised is not None:
            changes.append(FaultChange(fault, "end", time, raised, detail))
