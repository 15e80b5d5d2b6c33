"""Limits that keep the center fair under abuse: failed authentications per client address,
and how many requests are served at once.

Both answer "not now, retry in N seconds" (429 or 503 with Retry-After) instead of letting
work pile up until something times out with a 500. Pure bookkeeping over a clock the caller
may replace, so the tests need no server.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

MAX_ADDRESSES = 100_000
"""Client addresses remembered at once (the least recently failing are forgotten first)."""


@dataclass
class _Bucket:
    tokens: float
    at: float


class FailureLimiter:
    """A token bucket of failed authentications per client address: ``burst`` failures at
    once, regained at ``per_minute``. An address that has used them up is blocked until it
    regains one."""

    def __init__(
        self,
        burst: int,
        per_minute: float,
        *,
        max_addresses: int = MAX_ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst, self.rate_s = float(burst), per_minute / 60.0
        self.max_addresses = max_addresses
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def _level(self, address: str, now: float) -> _Bucket | None:
        bucket = self._buckets.get(address)
        if bucket is None:
            return None
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate_s)
        bucket.at = now
        if bucket.tokens >= self.burst:
            del self._buckets[address]  # fully recovered: nothing to remember
            return None
        return bucket

    def retry_after_s(self, address: str) -> float | None:
        """Seconds until ``address`` may fail again, or None when it is not blocked."""
        bucket = self._level(address, self._clock())
        if bucket is None or bucket.tokens >= 1:
            return None
        return (1 - bucket.tokens) / self.rate_s

    def failed(self, address: str) -> bool:
        """Count one failed authentication; True when this one used up the address's last."""
        now = self._clock()
        bucket = self._level(address, now)
        if bucket is None:
            bucket = self._buckets[address] = _Bucket(self.burst, now)
        self._buckets.move_to_end(address)
        bucket.tokens = max(0.0, bucket.tokens - 1)
        while len(self._buckets) > self.max_addresses:
            self._buckets.popitem(last=False)
        return bucket.tokens < 1


class Overloaded(Exception):
    """No request slot came free in time."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"the center is busy; retry in {retry_after_s:g} s")
        self.retry_after_s = retry_after_s


class Admission:
    """At most ``slots`` requests served at once; a request waits ``wait_s`` for a slot, then
    is turned away (:class:`Overloaded`)."""

    def __init__(self, slots: int, wait_s: float) -> None:
        self.slots, self.wait_s = slots, wait_s
        self._free = asyncio.Semaphore(slots)
        self.busy = 0
        self.turned_away = 0

    async def acquire(self) -> None:
        """Take a slot, waiting at most ``wait_s``; :class:`Overloaded` when none came free."""
        try:
            if self._free.locked() and self.wait_s <= 0:
                raise TimeoutError
            async with asyncio.timeout(self.wait_s):
                await self._free.acquire()
        except TimeoutError:
            self.turned_away += 1
            raise Overloaded(retry_after(self.wait_s)) from None
        self.busy += 1

    def release(self) -> None:
        self.busy -= 1
        self._free.release()


def retry_after(seconds: float) -> float:
    """A Retry-After value: whole seconds, at least one."""
    return float(max(1, math.ceil(seconds)))
