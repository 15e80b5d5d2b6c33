"""The gateway's clock skew against the center, estimated from receipts (pure).

Mosquitto publishes no wall-clock time in ``$SYS`` (only uptime and its build date), so the
only remote clock a gateway sees is the stream app's: every receipt carries ``received_at``,
stamped by the center after the database commit. As in NTP, the offset of one round trip is
``(sent + arrived) / 2 − received_at`` and is wrong by at most half the round trip; the
estimate is the sample with the shortest round trip among the recent ones (NTP's clock
filter), and that half round trip is reported as its error bound. A message sent more than
once is never sampled: its receipt may answer either copy (Karn's rule).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = ["ClockSkew", "SkewSample"]


@dataclass(frozen=True)
class SkewSample:
    offset_s: float
    """Gateway clock minus center clock."""
    round_trip_s: float


class ClockSkew:
    """Keeps the last ``window`` samples; :attr:`estimate` is the best of them."""

    def __init__(self, window: int = 32) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        self._samples: deque[SkewSample] = deque(maxlen=window)

    def observe(self, sent_at: float, center_time: float, arrived_at: float) -> SkewSample | None:
        """One receipt: local send and arrival times, and the center's stamp (epoch seconds).

        Returns the sample, or ``None`` when the local clock went back meanwhile.
        """
        round_trip = arrived_at - sent_at
        if round_trip < 0:
            return None
        sample = SkewSample(
            offset_s=(sent_at + arrived_at) / 2 - center_time, round_trip_s=round_trip
        )
        self._samples.append(sample)
        return sample

    @property
    def estimate(self) -> SkewSample | None:
        """The sample with the shortest round trip, or ``None`` before the first receipt."""
        if not self._samples:
            return None
        return min(self._samples, key=lambda s: s.round_trip_s)

    @property
    def skew_ms(self) -> float | None:
        best = self.estimate
        return None if best is None else round(best.offset_s * 1000, 1)

    @property
    def error_ms(self) -> float | None:
        """Half the best round trip: the estimate is within this of the truth."""
        best = self.estimate
        return None if best is None else round(best.round_trip_s * 500, 1)
