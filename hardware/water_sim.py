"""A simulated ultrasonic water-level sensor, for the demo and for tests without hardware.

It reports what a real pole-mounted unit reports, the **distance** from its face to the
surface below (mm), so the same depth conversion and level logic run on simulated and real
readings. The water follows a rain event's hydrograph (rise, plateau, drain) with gaussian
measurement noise from a seeded generator. It never reads the clock: the caller passes both
the reading's time and the time elapsed since the simulation began, so runs are repeatable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from citywatch.config.sensor import SimulatedRain

__all__ = ["SimulatedWaterSensor", "WaterReading"]


@dataclass(frozen=True)
class WaterReading:
    """One sample as the sensor's register map would give it."""

    distance_mm: float
    battery_pct: float
    time: datetime
    """When the sample was taken, aware UTC."""


class SimulatedWaterSensor:
    """A sensor ``mount_height_cm`` above a road that floods once as ``rain`` describes.

    ``rain=None`` is a dry road with a perfect sensor. Readings are deterministic for a
    seed and a sequence of calls: the noise comes from one ``numpy`` generator drawn once
    per :meth:`read`.
    """

    def __init__(
        self,
        mount_height_cm: float,
        rain: SimulatedRain | None,
        seed: int = 0,
        battery_pct: float = 98.0,
    ) -> None:
        if not math.isfinite(mount_height_cm) or mount_height_cm <= 0:
            raise ValueError(f"mount_height_cm must be positive, got {mount_height_cm}")
        if not 0 <= battery_pct <= 100:
            raise ValueError(f"battery_pct must be within 0–100, got {battery_pct}")
        self.mount_height_cm = mount_height_cm
        self.rain = rain
        self.battery_pct = battery_pct
        self._rng = np.random.default_rng(seed)

    def depth_at(self, elapsed_s: float) -> float:
        """Noiseless water depth (cm) ``elapsed_s`` after the simulation began.

        Zero until ``start_after``, a linear rise to ``peak_depth_cm`` over ``rise``, the
        peak held for ``plateau``, a linear drain back to zero over ``drain``, then zero.
        Linear keeps level crossing times easy to predict in demos and tests.
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
        if t < rise_s:
            return peak * t / rise_s
        t -= rise_s
        if t < plateau_s:
            return peak
        t -= plateau_s
        if t < drain_s:
            return peak * (1 - t / drain_s)
        return 0.0

    def read(self, time: datetime, elapsed_s: float) -> WaterReading:
        """Sample the distance to the surface: mount height − depth, plus gaussian noise.

        The distance never goes below zero (water at the sensor face); readings inside the
        blind zone are returned as measured, for the depth conversion to reject.
        """
        if time.tzinfo is None or time.utcoffset() is None:
            raise ValueError(f"reading time {time.isoformat()} has no timezone: pass aware UTC")
        depth_cm = self.depth_at(elapsed_s)
        noise_cm = self.rain.noise_cm if self.rain is not None else 0.0
        if noise_cm > 0:
            depth_cm += float(self._rng.normal(0.0, noise_cm))
        distance_mm = max(0.0, (self.mount_height_cm - depth_cm) * 10)
        return WaterReading(
            distance_mm=distance_mm, battery_pct=self.battery_pct, time=time.astimezone(UTC)
        )
