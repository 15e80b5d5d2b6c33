"""The wall clock of the stream worker's shell, in one place.

The core (dedup, SLA, work orders) takes time as an argument; the worker's parts read the
wall clock only through a :data:`Clock` they are given, :func:`utc_now` unless a test
passes its own.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)
