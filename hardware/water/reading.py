"""What every water-level adapter returns: one plain reading, whatever the transport.

Modbus registers, a LoRaWAN payload and the simulator all end here, so the edge logic never
knows which protocol a sensor speaks (ARCHITECTURE.md: adapters return plain domain values,
never MQTT messages).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["WaterReading"]


@dataclass(frozen=True)
class WaterReading:
    """One sample of an ultrasonic or radar unit looking down at the road."""

    distance_mm: float
    """Distance from the sensor face to the surface below, as the unit reported it."""
    battery_pct: float | None
    """Battery charge; ``None`` when the unit does not report one (mains powered)."""
    time: datetime
    """When the sample was taken, aware UTC."""
    status: int = 0
    """The unit's raw status word (0 when it has none), kept for telemetry and diagnosis."""
    flagged_invalid: bool = False
    """The unit itself marked this measurement invalid (no echo, blocked transducer)."""
