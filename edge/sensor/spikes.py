"""A running median that removes spikes from a sensor's depth series (pure).

A passing vehicle's bow wave, rain on the transducer or a bird below it give one or two
readings far from the others. The median of the last ``window`` readings ignores up to
``(window - 1) / 2`` such readings in a row, where a mean would be dragged by them; the
price is that a real step shows up ``(window - 1) / 2`` readings late. :meth:`push` also
returns the time of the window's middle reading, the time the median describes, so the
level logic can date a change to when the water got there rather than to when the filter
could be sure.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime

__all__ = ["MedianFilter"]


class MedianFilter:
    """The median of the last ``window`` values (fewer while it fills up)."""

    def __init__(self, window: int) -> None:
        if window < 1 or window % 2 == 0:
            raise ValueError(f"window must be a positive odd number, got {window}")
        self.window = window
        self._values: deque[float] = deque(maxlen=window)
        self._times: deque[datetime] = deque(maxlen=window)
        self._median: float | None = None

    def __call__(self, value: float) -> float:
        """Add ``value``; return the median including it."""
        self._values.append(value)
        ordered = sorted(self._values)
        # While filling up with an even count, the lower middle: a single spike among two
        # readings cannot win when spikes read deep (short distance), the common case.
        self._median = ordered[(len(ordered) - 1) // 2]
        return self._median

    def push(self, time: datetime, value: float) -> tuple[datetime, float]:
        """Add a timed value; return (time of the window's middle reading, median)."""
        self._times.append(time)
        median = self(value)
        return self._times[(len(self._times) - 1) // 2], median

    @property
    def median(self) -> float | None:
        """The last returned median; ``None`` before the first value."""
        return self._median

    def reset(self) -> None:
        """Forget the history (after a fault, old values say nothing about the water)."""
        self._values.clear()
        self._times.clear()
        self._median = None
