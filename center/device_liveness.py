"""Whether a device is online, judged from facts: its last status message, its newest
telemetry, and its gateway's status (the gateway's last will included).

Pure: the caller reads the facts and the clock. The rules, first match wins:

1. its gateway is offline (a last will, or a clean stop) since at least the device's last
   fact → offline ("gateway … offline"): a camera cannot report through a dead gateway,
   whatever its own retained status still says;
2. the device says it is offline (a camera in an outage) → offline;
3. nothing heard from it ever → unknown (``None``);
4. nothing heard for longer than ``silent_after`` → offline ("silent for …");
5. otherwise online.

A gateway itself (no telemetry; its retained status is all there is) follows rules 2, 3, 5.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

ONLINE, OFFLINE = "online", "offline"


@dataclass(frozen=True)
class Facts:
    """What the center last heard from one device and from its gateway."""

    reported_state: str | None = None
    status_at: datetime | None = None
    telemetry_at: datetime | None = None
    gateway: str | None = None
    gateway_state: str | None = None
    gateway_at: datetime | None = None
    is_gateway: bool = False


@dataclass(frozen=True)
class Liveness:
    state: str | None
    """online / offline; None: never heard from."""
    last_seen: datetime | None
    reason: str | None
    """Why it is offline, in words (None when online or unknown)."""


def last_seen(facts: Facts) -> datetime | None:
    """The newest of its status and telemetry times."""
    times = [t for t in (facts.status_at, facts.telemetry_at) if t is not None]
    return max(times) if times else None


def judge(facts: Facts, now: datetime, silent_after: timedelta) -> Liveness:
    """The device's state by the module's rules."""
    seen = last_seen(facts)
    if (
        facts.gateway_state == OFFLINE
        and facts.gateway_at is not None
        and (seen is None or facts.gateway_at >= seen)
    ):
        reason = f"gateway {facts.gateway} offline since {facts.gateway_at.isoformat()}"
        return Liveness(OFFLINE, seen, reason)
    if facts.reported_state == OFFLINE:
        return Liveness(OFFLINE, seen, "the device reported itself offline")
    if seen is None:
        return Liveness(None, None, None)
    silent = now - seen
    if not facts.is_gateway and silent > silent_after:
        return Liveness(OFFLINE, seen, f"silent for {ago(silent)}")
    return Liveness(ONLINE, seen, None)


def ago(span: timedelta) -> str:
    """A span in words for people: "40 s", "12 min", "3 h 5 min", "2 d 4 h"."""
    seconds = max(0, int(span.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if minutes < 60:
        return f"{minutes} min"
    if hours < 24:
        rest = minutes % 60
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    rest = hours % 24
    return f"{days} d {rest} h" if rest else f"{days} d"
