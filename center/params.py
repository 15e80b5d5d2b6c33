"""Parameter types the routes share, so that every input is checked where it enters: no NUL
characters (PostgreSQL text cannot hold them), bounded lengths, times inside a range the
database and the site's calendar arithmetic can handle, finite coordinates. A value outside
them is 422 with the reason, never a 500 from deeper down.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated

from fastapi import HTTPException, status
from pydantic import AfterValidator, AwareDatetime, Field

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Text = Annotated[str, Field(max_length=2000), AfterValidator(no_nul)]
"""Free text a person writes (a reason, a note)."""
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(no_nul)]
"""An id or a name (a district, a department, an attachment)."""


def within_range(value: datetime) -> datetime:
    """A time between 1970 and 2200 (pydantic validator; a bare time is judged as UTC)."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if not EARLIEST <= aware < LATEST:
        raise ValueError("must lie between 1970 and 2200")
    return value


Moment = Annotated[AwareDatetime, AfterValidator(within_range)]
"""A time with its zone, in a range the calendar arithmetic can handle."""


def unprocessable(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)


def checked_time(value: datetime | None, what: str) -> datetime | None:
    """``value`` if it lies between 1970 and 2200 (an aware time; a bare one is judged as
    UTC), else 422."""
    if value is None:
        return None
    try:
        return within_range(value)
    except ValueError:
        raise unprocessable(
            f"{what} must lie between 1970 and 2200, not {value.isoformat()}"
        ) from None


def bbox(text: str | None) -> tuple[float, float, float, float] | None:
    """``minLon,minLat,maxLon,maxLat`` as four finite WGS84 numbers, minimums first."""
    if text is None:
        return None
    try:
        min_lon, min_lat, max_lon, max_lat = (float(v) for v in text.split(","))
    except ValueError:
        raise unprocessable("bbox must be four numbers: minLon,minLat,maxLon,maxLat") from None
    corners = (min_lon, min_lat, max_lon, max_lat)
    if not all(math.isfinite(v) for v in corners):
        raise unprocessable("bbox numbers must be finite")
    if not (-180 <= min_lon <= 180 and -180 <= max_lon <= 180 and -90 <= min_lat <= 90
            and -90 <= max_lat <= 90):  # fmt: skip
        raise unprocessable("bbox longitudes must lie in −180…180 and latitudes in −90…90")
    if min_lon > max_lon or min_lat > max_lat:
        raise unprocessable("bbox minimums must not exceed its maximums")
    return corners
