"""A simulated ultrasonic water-level sensor, for the demo and for tests without hardware.

It reports what a real pole-mounted unit reports, the **distance** from its face to the
surface below (mm), so the same depth conversion and level logic run on simulated and real
readings. The water follows a rain event's hydrograph (rise, plateau, drain, optionally
repeated) with gaussian measurement noise from a seeded generator, and the sensor can be
given the faults field units show: a stuck value, spikes, dropouts, a low battery, a lost
echo. It never reads the clock: the caller passes both the reading's time and the time
elapsed since the simulation began, so runs are repeatable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np

from citywatch.config.sensor import SensorConfig, SimulatedFault, SimulatedRain
from citywatch.hardware.water.reading import WaterReading

__all__ = ["NO_ECHO_MM", "STATUS_NO_ECHO", "SimulatedWaterSensor", "WaterReading"]

NO_ECHO_MM = 65535.0
"""What the simulated unit reports as distance when the echo is lost (the register's max)."""
STATUS_NO_ECHO = 0x0001
"""Status bit the simulated unit sets for an invalid measurement (the default fault_mask)."""


class SimulatedWaterSensor:
    """A sensor ``mount_height_cm`` above a road that floods as ``rain`` describes.

    ``rain=None`` is a dry road with a perfect sensor. Readings are deterministic for a
    seed and a sequence of calls: the noise comes from one ``numpy`` generator drawn once
    per reading, the faults from a second one, so adding a fault never changes the noise.
    """

    def __init__(
        self,
        mount_height_cm: float,
        rain: SimulatedRain | None,
        seed: int = 0,
        battery_pct: float = 98.0,
        faults: Sequence[SimulatedFault] = (),
    ) -> None:
        if not math.isfinite(mount_height_cm) or mount_height_cm <= 0:
            raise ValueError(f"mount_height_cm must be positive, got {mount_height_cm}")
        if not 0 <= battery_pct <= 100:
            raise ValueError(f"battery_pct must be within 0–100, got {battery_pct}")
        self.mount_height_cm = mount_height_cm
        self.rain = rain
        self.battery_pct = battery_pct
        self.faults = tuple(faults)
        self._rng = np.random.default_rng(seed)
        self._fault_rng = np.random.default_rng(seed + 7919)
        self._last_distance_mm: float | None = None
        self._stuck_at_mm: float | None = None

    @classmethod
    def for_sensor(cls, sensor: SensorConfig, index: int) -> SimulatedWaterSensor:
        """The simulator of a ``transport: simulated`` sensor, seeded by its place on the
        gateway (what the sensor agent, the demo and the tests plug into its channels)."""
        return cls(
            sensor.mount_height_cm, sensor.simulation, seed=index, faults=sensor.simulated_faults
        )

    def depth_at(self, elapsed_s: float) -> float:
        """Noiseless water depth (cm) ``elapsed_s`` after the simulation began.

        Zero until ``start_after``, a linear rise to ``peak_depth_cm`` over ``rise``, the
        peak held for ``plateau``, a linear drain back to zero over ``drain``, then zero
        (until the next event when ``repeat_every`` is set). Linear keeps level crossing
        times easy to predict in demos and tests.
        """
        if math.isnan(elapsed_s):
            raise ValueError("elapsed_s is NaN")
        rain = self.rain
        if rain is None:
            return 0.0
        peak = rain.peak_depth_cm
        rise_s = rain.rise.total_seconds()
        plateau_s = rain.plateau.total_seconds()
        drain_s = rain.drain.total_seconds()
        t = elapsed_s - rain.start_after.total_seconds()
        if t < 0:
            return 0.0
        if rain.repeat_every is not None:
            t %= rain.repeat_every.total_seconds()
        if t < rise_s:
            return peak * t / rise_s
        t -= rise_s
        if t < plateau_s:
            return peak
        t -= plateau_s
        if t < drain_s:
            return peak * (1 - t / drain_s)
        return 0.0

    def active_faults(self, elapsed_s: float) -> list[SimulatedFault]:
        """The injected faults in effect ``elapsed_s`` after the start."""
        active = []
        for fault in self.faults:
            start = fault.start_after.total_seconds()
            end = math.inf if fault.duration is None else start + fault.duration.total_seconds()
            if start <= elapsed_s < end:
                active.append(fault)
        return active

    def sample(self, time: datetime, elapsed_s: float) -> WaterReading | None:
        """What the unit answers now: a reading, or ``None`` while a dropout fault lasts."""
        reading = self.read(time, elapsed_s)
        if any(f.type == "dropout" for f in self.active_faults(elapsed_s)):
            return None
        return reading

    def read(self, time: datetime, elapsed_s: float) -> WaterReading:
        """Sample the distance to the surface: mount height − depth, plus noise and faults.

        The distance never goes below zero (water at the sensor face); readings inside the
        blind zone are returned as measured, for the depth conversion to reject. Dropouts
        are :meth:`sample`'s business: here the unit always answers.
        """
        if time.tzinfo is None or time.utcoffset() is None:
            raise ValueError(f"reading time {time.isoformat()} has no timezone: pass aware UTC")
        depth_cm = self.depth_at(elapsed_s)
        noise_cm = self.rain.noise_cm if self.rain is not None else 0.0
        if noise_cm > 0:
            depth_cm += float(self._rng.normal(0.0, noise_cm))
        distance_mm = max(0.0, (self.mount_height_cm - depth_cm) * 10)
        battery_pct = self.battery_pct
        status = 0
        active = self.active_faults(elapsed_s)
        stuck = False
        for fault in active:
            if fault.type == "spikes" and self._fault_rng.random() < fault.spike_probability:
                # Spikes read short (an object under the transducer looks like deep water).
                distance_mm = max(0.0, distance_mm - fault.spike_cm * 10)
            elif fault.type == "battery_low":
                battery_pct = min(battery_pct, fault.battery_pct)
            elif fault.type == "no_echo":
                distance_mm, status = NO_ECHO_MM, status | STATUS_NO_ECHO
            elif fault.type == "stuck":
                stuck = True
        if stuck:
            if self._stuck_at_mm is None:
                self._stuck_at_mm = (
                    self._last_distance_mm if self._last_distance_mm is not None else distance_mm
                )
            distance_mm = self._stuck_at_mm
        else:
            self._stuck_at_mm = None
        self._last_distance_mm = distance_mm
        return WaterReading(
            distance_mm=distance_mm,
            battery_pct=battery_pct,
            time=time.astimezone(UTC),
            status=status,
            flagged_invalid=bool(status & STATUS_NO_ECHO),
        )
