"""How the center judges whether a device is online from what it last heard."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from citywatch.config.base import ConfigModel, Duration


class DeviceStatusPolicy(ConfigModel):
    """A device is online while it reports; silent longer than ``silent_after`` it is shown
    offline (a sensor whose gateway still answers but which sends nothing is not fine)."""

    silent_after: Duration = Field(
        default=timedelta(minutes=10),
        title="Silent after",
        description=(
            "no telemetry or status from a device for this long shows it offline; longer than"
            " the slowest device's telemetry interval"
        ),
    )
