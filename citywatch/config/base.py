"""Base model and small value types shared by every config section."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from citywatch.contracts.topics import check_segment


class ConfigModel(BaseModel):
    """Every config section: a typo is an error, not a silently ignored key."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)\s*$")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> Any:
    """Accept ``"30m"``, ``"4h"``, ``"3d"``, ``"500ms"`` or seconds as a number."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '30m', '4h', '3d'")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return timedelta(seconds=float(match.group(1)) * _UNIT_S[match.group(2)])
    raise ValueError(f"{value!r} is not a duration: write e.g. 90 (seconds), '30m', '4h' or '3d'")


def _format_duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(_format_duration, return_type=str, when_used="json"),
    Field(json_schema_extra={"type": "string", "pattern": _DURATION.pattern}),
]


def _identifier(value: Any) -> Any:
    if isinstance(value, str):
        check_segment(value, "id")
    return value


Identifier = Annotated[
    str,
    BeforeValidator(_identifier),
    Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$"),
]
"""An id that is also safe as an MQTT topic level and a Kafka key."""


class GeoPoint(ConfigModel):
    """A WGS84 position."""

    lat: float = Field(ge=-90, le=90, title="Latitude", description="WGS84 degrees north")
    lon: float = Field(ge=-180, le=180, title="Longitude", description="WGS84 degrees east")
