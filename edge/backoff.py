"""Capped exponential backoff with jitter, for reconnecting to a broker (pure).

Delays double from ``min_s`` up to ``max_s``; each is drawn from the upper half of its
step (``[d/2, d]``), so a fleet of gateways cut off by one outage does not reconnect in
lockstep, yet no delay is ever shorter than half its step: a refused login can never turn
into a tight loop.
"""

from __future__ import annotations

import math
import random

__all__ = ["Backoff"]


class Backoff:
    """The delays before successive reconnect attempts; :meth:`reset` after a good connection."""

    def __init__(self, min_s: float, max_s: float, rng: random.Random | None = None) -> None:
        if not (math.isfinite(min_s) and min_s > 0):
            raise ValueError(f"min_s must be a positive number of seconds, got {min_s}")
        if not (math.isfinite(max_s) and max_s >= min_s):
            raise ValueError(f"max_s must be at least min_s ({min_s}), got {max_s}")
        self.min_s = min_s
        self.max_s = max_s
        self._rng = rng or random.Random()
        self.attempts = 0

    def step(self) -> float:
        """The cap of the next delay (before jitter): min_s × 2^attempts, at most max_s."""
        return min(self.max_s, self.min_s * 2.0 ** min(self.attempts, 62))

    def next_delay(self) -> float:
        """The delay before the next attempt; each call counts one attempt."""
        step = self.step()
        self.attempts += 1
        return step / 2 + self._rng.random() * step / 2

    def reset(self) -> None:
        self.attempts = 0
