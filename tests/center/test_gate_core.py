"""The gate's pure parts, without a server: the token cache (known and unknown tokens, TTLs,
one query per token however many ask at once, junk never evicting a known user), the
per-address failure limiter, request admission, signed URLs and log redaction."""

from __future__ import annotations

import asyncio
import logging

import pytest

from citywatch.center.auth import User, hash_token
from citywatch.center.log_redaction import RedactSecrets, redact
from citywatch.center.signed_urls import BadSignature, Signer
from citywatch.center.throttle import Admission, FailureLimiter, Overloaded
from citywatch.center.token_cache import TokenCache
from citywatch.config.center import CenterLimits

OFFICER = User("duty-officer", "operator")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Database:
    """Stands for the token table: answers lookups by SHA-256 and counts them."""

    def __init__(self, tokens: dict[str, User], delay_s: float = 0.0) -> None:
        self.users = {hash_token(t): u for t, u in tokens.items()}
        self.delay_s = delay_s
        self.queries = 0

    async def lookup(self, digest: str) -> User | None:
        self.queries += 1
        await asyncio.sleep(self.delay_s)
        return self.users.get(digest)


def test_known_and_unknown_tokens_are_remembered_for_their_own_ttls() -> None:
    """A known token is asked for again after token_cache_s, an unknown one after its longer TTL."""
    clock, db = Clock(), Database({"good": OFFICER})
    cache = TokenCache(5, 30, clock=clock)

    async def run() -> None:
        assert await cache.user("good", db.lookup) == OFFICER
        assert await cache.user("junk", db.lookup) is None
        assert db.queries == 2
        clock.now += 6  # the known entry expired, the unknown one not
        assert await cache.user("good", db.lookup) == OFFICER
        assert await cache.user("junk", db.lookup) is None
        assert db.queries == 3
        clock.now += 30
        assert await cache.user("junk", db.lookup) is None
        assert db.queries == 4

    asyncio.run(run())


def test_many_requests_with_one_token_share_one_query() -> None:
    """Forty concurrent requests carrying the same unknown token cost one lookup."""
    db = Database({}, delay_s=0.05)
    cache = TokenCache(5, 30)

    async def run() -> list[User | None]:
        return await asyncio.gather(*(cache.user("junk", db.lookup) for _ in range(40)))

    assert asyncio.run(run()) == [None] * 40
    assert db.queries == 1


def test_a_flood_of_unknown_tokens_never_evicts_a_known_user() -> None:
    """Known and unknown tokens are bounded separately: junk cannot push the officer out."""
    db = Database({"good": OFFICER})
    cache = TokenCache(60, 60, max_known=10, max_unknown=10)

    async def run() -> None:
        await cache.user("good", db.lookup)
        for n in range(100):
            await cache.user(f"junk-{n}", db.lookup)

    asyncio.run(run())
    hit = cache.peek("good")
    assert hit is not None and hit.user == OFFICER


def test_forgetting_a_user_makes_the_next_request_ask_the_database() -> None:
    """A revoke through this process applies at once, not after the TTL."""
    db = Database({"good": OFFICER})
    cache = TokenCache(60, 60)
    asyncio.run(cache.user("good", db.lookup))
    cache.forget_user("duty-officer")
    assert cache.peek("good") is None


def test_failures_beyond_the_burst_block_the_address_until_it_regains_one() -> None:
    """Burst 3 at 6/min: the third failure blocks for 10 s; other addresses are untouched."""
    clock = Clock()
    limiter = FailureLimiter(3, 6, clock=clock)
    assert [limiter.failed("10.0.0.9") for _ in range(3)] == [False, False, True]
    assert limiter.retry_after_s("10.0.0.9") == pytest.approx(10)
    assert limiter.retry_after_s("10.0.0.8") is None
    clock.now += 10
    assert limiter.retry_after_s("10.0.0.9") is None


def test_the_limiter_remembers_a_bounded_number_of_addresses() -> None:
    """An attacker rotating addresses cannot grow the limiter's memory without bound."""
    limiter = FailureLimiter(1, 1, max_addresses=100)
    for n in range(1000):
        limiter.failed(f"10.0.{n // 256}.{n % 256}")
    assert len(limiter._buckets) == 100


def test_admission_turns_away_what_waits_too_long_with_a_retry_time() -> None:
    """Two slots, a third request waits its 0.05 s and is told to retry in 1 s."""
    admission = Admission(2, 0.05)

    async def run() -> float:
        await admission.acquire()
        await admission.acquire()
        with pytest.raises(Overloaded) as busy:
            await admission.acquire()
        admission.release()
        await admission.acquire()  # a freed slot is taken at once
        return busy.value.retry_after_s

    assert asyncio.run(run()) == 1.0
    assert admission.turned_away == 1 and admission.busy == 2


def test_a_signed_url_opens_its_path_until_it_expires_and_nothing_else() -> None:
    """The signature binds path, user, role and expiry; a changed one is refused."""
    signer = Signer.fresh(60)
    url, expires = signer.sign("/api/v1/alerts/cam-1%3Aa/evidence/snapshot", OFFICER, now=100)
    path, _, query = url.partition("?")
    params = dict(p.split("=", 1) for p in query.split("&"))
    decoded = "/api/v1/alerts/cam-1:a/evidence/snapshot"
    assert path == "/api/v1/alerts/cam-1%3Aa/evidence/snapshot"  # as the API hands it out
    assert expires == 160 and signer.verify(decoded, params, now=150) == OFFICER
    with pytest.raises(BadSignature, match="expired"):
        signer.verify(decoded, params, now=161)
    with pytest.raises(BadSignature, match="does not match"):
        signer.verify("/api/v1/alerts/other/evidence/snapshot", params, now=150)
    with pytest.raises(BadSignature, match="does not match"):
        signer.verify(decoded, params | {"role": "admin"}, now=150)
    with pytest.raises(BadSignature, match="does not match"):
        Signer.fresh(60).verify(decoded, params, now=150)  # another process's key
    with pytest.raises(BadSignature, match="cannot be signed"):
        signer.sign("/api/v1/work-orders", OFFICER, now=100)


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ('127.0.0.1:5 - "GET /api/v1/feed?access_token=abc123 HTTP/1.1" 200', "abc123"),
        ('"GET /api/v1/feed?exp=1&user=a&role=viewer&sig=deadbeef HTTP/1.1"', "deadbeef"),
        ("headers: {'authorization': 'Bearer s3cr3t-token'}", "s3cr3t-token"),
        ("/x?after=3&ACCESS_TOKEN=Zz9&y=1", "Zz9"),
    ],
)
def test_redaction_masks_tokens_and_signatures(line: str, secret: str) -> None:
    """Token, signature and bearer values never survive into a log line."""
    assert secret not in redact(line) and "[redacted]" in redact(line)


def test_the_filter_rewrites_uvicorn_access_records() -> None:
    """uvicorn's access record keeps the path in its arguments: those are redacted too."""
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/api/v1/feed?access_token=abc123", "1.1", 200), None,
    )  # fmt: skip
    assert RedactSecrets().filter(record)
    assert "abc123" not in record.getMessage()


def test_request_slots_that_leave_no_connections_for_feed_and_lookups_are_refused() -> None:
    """16 connections hold at most 12 request slots; more is a config error saying what to do."""
    assert CenterLimits(database_connections=16, concurrent_requests=12).concurrent_requests == 12
    with pytest.raises(ValueError, match="raise database_connections or lower concurrent_requests"):
        CenterLimits(database_connections=16, concurrent_requests=13)


def test_a_recently_known_token_is_stale_not_forgotten() -> None:
    """Past its TTL a known token is asked about again but still marked as recently known."""
    clock, db = Clock(), Database({"good": OFFICER})
    cache = TokenCache(5, 30, clock=clock)
    asyncio.run(cache.user("good", db.lookup))
    clock.now += 6
    hit = cache.peek("good")
    assert hit is not None and hit.user == OFFICER and not hit.fresh
    asyncio.run(cache.user("good", db.lookup))
    assert db.queries == 2
