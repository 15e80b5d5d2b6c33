"""What the stream accepts from devices beyond the wire contract: plausible times.

A device with a dead RTC battery reports 1970 or 2000; one with a corrupted clock reports
9999. Stored as they came, such alerts became work orders that escalated to the district at
once (their SLA had long expired). The stream dead-letters them instead, with the reason.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import AwareDatetime, Field

from citywatch.config.base import ConfigModel, Duration

__all__ = ["Intake"]


class Intake(ConfigModel):
    """Bounds on what a device may claim; a message outside them is dead-lettered alone."""

    earliest_event_time: AwareDatetime = Field(
        default=datetime(2020, 1, 1, tzinfo=UTC),
        title="Site epoch",
        description="an event dated before this is a device's broken clock, not an event"
        " (set it to when the site's first device went live)",
    )
    max_clock_skew: Duration = Field(
        default=timedelta(minutes=5),
        title="Allowed clock skew",
        description="how far past the stream's receive time an event time may lie"
        " (gateways keep NTP time; their status reports their skew)",
    )
