"""Device state from facts: a gateway's last will takes its devices offline, silence
turns a device offline, and last seen is the newest of status and telemetry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from citywatch.center.device_liveness import Facts, ago, judge

NOW = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
SILENT = timedelta(minutes=10)


def minutes_ago(n: float) -> datetime:
    return NOW - timedelta(minutes=n)


@pytest.mark.parametrize(
    ("facts", "state", "seen", "reason"),
    [
        # A camera's retained "online" outlives its gateway: the gateway's will wins.
        (Facts("online", minutes_ago(30), minutes_ago(3), "gw", "offline", minutes_ago(2)),
         "offline", minutes_ago(3), "gateway gw offline since"),
        # Data newer than the gateway's will: the gateway is back (its online not here yet).
        (Facts("online", minutes_ago(30), minutes_ago(1), "gw", "offline", minutes_ago(2)),
         "online", minutes_ago(1), None),
        # A sensor that never sent a status but sends telemetry is online, seen then.
        (Facts(None, None, minutes_ago(0.5), "gw", "online", minutes_ago(60)),
         "online", minutes_ago(0.5), None),
        # Silent longer than silent_after: offline, saying for how long.
        (Facts(None, None, minutes_ago(25), "gw", "online", minutes_ago(60)),
         "offline", minutes_ago(25), "silent for 25 min"),
        # A camera in an outage says so itself, even while it still sends telemetry.
        (Facts("offline", minutes_ago(5), minutes_ago(0.1)),
         "offline", minutes_ago(0.1), "reported itself offline"),
        # Never heard from: unknown.
        (Facts(None, None, None, "gw", None, None), None, None, None),
        # A gateway offline with a device never heard from: offline, no last seen.
        (Facts(None, None, None, "gw", "offline", minutes_ago(1)),
         "offline", None, "gateway gw offline"),
        # A gateway's retained online is all it sends: never silent.
        (Facts("online", minutes_ago(300), None, is_gateway=True), "online", minutes_ago(300), None),
    ],
)  # fmt: skip
def test_state_follows_the_rules_in_order(
    facts: Facts, state: str | None, seen: datetime | None, reason: str | None
) -> None:
    """Each fact pattern gives its state, last seen and reason."""
    verdict = judge(facts, NOW, SILENT)
    assert (verdict.state, verdict.last_seen) == (state, seen)
    if reason is None:
        assert verdict.reason is None
    else:
        assert verdict.reason is not None and reason in verdict.reason


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(0, "0 s"), (59, "59 s"), (60, "1 min"), (3599, "59 min"), (3600, "1 h"),
     (3900, "1 h 5 min"), (86400, "1 d"), (86400 + 4 * 3600 + 59, "1 d 4 h"), (-5, "0 s")],
)  # fmt: skip
def test_ago_words_a_span_for_people(seconds: int, words: str) -> None:
    """Spans read as seconds, minutes, hours and minutes, or days and hours."""
    assert ago(timedelta(seconds=seconds)) == words
