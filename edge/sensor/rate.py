"""Rate-of-rise alerts: the water is coming up fast, before it reaches the first level (pure).

The slope is a least-squares fit over the (spike-filtered) depths of the last ``window``,
in cm per minute, so ±1 cm noise averages out and a single late reading cannot fake a rise.
A fast rise must hold for ``min_duration`` and happen above ``min_depth_cm`` (ripples in a
puddle on a dry road are not a flood); the alert ends when the rise slows below
``clear_cm_per_min``. Times are the readings' own, never the wall clock.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from citywatch.config.sensor import RateOfRise

__all__ = ["RateChange", "RateOfRiseTracker"]

_MIN_POINTS = 3


@dataclass(frozen=True)
class RateChange:
    """A fast rise confirmed (start) or over (end); each becomes one alert message."""

    phase: Literal["start", "end"]
    rate_cm_per_min: float
    depth_cm: float
    time: datetime
    since: datetime
    """start: when the fast rise began; end: when the alert started."""
    peak_rate_cm_per_min: float


class RateOfRiseTracker:
    """Follows one sensor's depth and reports when it rises faster than the policy allows."""

    def __init__(self, policy: RateOfRise) -> None:
        self.policy = policy
        self._window_s = policy.window.total_seconds()
        self._points: deque[tuple[float, float]] = deque()
        self._origin: float | None = None
        # Running sums over the window, times relative to _origin (keeps them small).
        self._n = 0
        self._st = self._sd = self._stt = self._std = 0.0
        self._fast_since: datetime | None = None
        self._active_since: datetime | None = None
        self._peak = 0.0
        self.rate_cm_per_min: float | None = None
        """The last fitted slope; ``None`` until the window holds enough readings."""

    @property
    def active(self) -> bool:
        return self._active_since is not None

    def observe(self, time: datetime, depth_cm: float) -> RateChange | None:
        """Take one filtered reading (times ascending); return the change it confirms."""
        if not math.isfinite(depth_cm):
            raise ValueError(f"depth_cm must be finite, got {depth_cm}")
        time = time.astimezone(UTC)
        rate = self._add(time.timestamp(), depth_cm)
        self.rate_cm_per_min = rate
        if not self.policy.enabled or rate is None:
            return None
        if self._active_since is None:
            if rate >= self.policy.rise_cm_per_min and depth_cm >= self.policy.min_depth_cm:
                if self._fast_since is None:
                    self._fast_since = time
                    self._peak = rate
                self._peak = max(self._peak, rate)
                if time - self._fast_since >= self.policy.min_duration:
                    self._active_since = time
                    return RateChange("start", rate, depth_cm, time, self._fast_since, self._peak)
            else:
                self._fast_since = None
            return None
        self._peak = max(self._peak, rate)
        if rate <= self.policy.clear_cm_per_min:
            since = self._active_since
            self._active_since = None
            self._fast_since = None
            return RateChange("end", rate, depth_cm, time, since, self._peak)
        return None

    def reset(self) -> None:
        """Forget the window (the sensor was faulty: its old readings fit no slope)."""
        self._points.clear()
        self._origin = None
        self._n = 0
        self._st = self._sd = self._stt = self._std = 0.0
        self._fast_since = None
        self.rate_cm_per_min = None

    def _add(self, t_abs: float, depth: float) -> float | None:
        if self._origin is None or t_abs - self._origin > 86_400:
            self._rebase(t_abs)
        assert self._origin is not None
        t = t_abs - self._origin
        self._points.append((t, depth))
        self._n += 1
        self._st += t
        self._sd += depth
        self._stt += t * t
        self._std += t * depth
        while self._points and t - self._points[0][0] > self._window_s:
            old_t, old_d = self._points.popleft()
            self._n -= 1
            self._st -= old_t
            self._sd -= old_d
            self._stt -= old_t * old_t
            self._std -= old_t * old_d
        span = t - self._points[0][0]
        if self._n < _MIN_POINTS or span < self._window_s / 2:
            return None
        denominator = self._n * self._stt - self._st * self._st
        if denominator <= 1e-9:
            return None
        slope_per_s = (self._n * self._std - self._st * self._sd) / denominator
        return slope_per_s * 60.0

    def _rebase(self, t_abs: float) -> None:
        """Move the time origin to ``t_abs`` and recompute the sums (float precision)."""
        points = [(t + (self._origin or 0.0), d) for t, d in self._points]
        self._origin = t_abs
        self._points.clear()
        self._n = 0
        self._st = self._sd = self._stt = self._std = 0.0
        for t, d in points:
            rel = t - t_abs
            self._points.append((rel, d))
            self._n += 1
            self._st += rel
            self._sd += d
            self._stt += rel * rel
            self._std += rel * d
