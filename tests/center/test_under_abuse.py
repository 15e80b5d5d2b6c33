"""The center under abuse, on a real uvicorn and PostgreSQL: a junk-token flood leaves a
valid viewer fast and answers nobody with a 5xx; more requests than database connections
never deadlock the pool; failed authentication is rate-limited per client address; a query
stuck past the statement timeout is a 503, not a hung request."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from tests.center.conftest import TOKENS, LiveServer, start_server, with_center

pytestmark = pytest.mark.integration

VIEWER_ADDRESS, FLOOD_ADDRESS = "127.0.0.2", "127.0.0.1"


def from_address(address: str, server: LiveServer, connections: int = 100) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(
        local_address=address, limits=httpx.Limits(max_connections=connections)
    )
    return httpx.AsyncClient(base_url=server.url, transport=transport, timeout=90)


async def answer(client: httpx.AsyncClient, token: str, path: str = "/api/v1/work-orders") -> str:
    """The status of one GET, or "error: …" when there was no answer."""
    try:
        response = await client.get(path, headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        return f"error: {type(exc).__name__}"
    if response.status_code in (429, 503):
        assert int(response.headers["retry-after"]) >= 1
    return str(response.status_code)


@pytest.fixture
def server(center_settings) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    """A fresh center per test (its failure limiter and caches start empty)."""
    live = start_server(center_settings)
    try:
        yield live
    finally:
        live.stop()


def test_junk_token_flood_leaves_a_viewer_fast_and_answers_nobody_with_a_5xx(server) -> None:  # type: ignore[no-untyped-def]
    """200 junk-token requests 40 at a time: every viewer request is 200 within 2 s, junk gets
    only 401/429."""

    async def run() -> tuple[Counter[str], list[tuple[str, float]]]:
        junk: Counter[str] = Counter()
        viewer: list[tuple[str, float]] = []
        remaining = list(range(200))
        async with (
            from_address(FLOOD_ADDRESS, server, 40) as attacker,
            from_address(VIEWER_ADDRESS, server, 1) as officer,
        ):

            async def attack() -> None:
                while remaining:
                    remaining.pop()
                    junk[await answer(attacker, secrets.token_urlsafe(32))] += 1

            async def watch() -> None:
                while remaining:
                    began = time.perf_counter()
                    viewer.append(
                        (await answer(officer, TOKENS["viewer"]), time.perf_counter() - began)
                    )

            await asyncio.gather(watch(), *(attack() for _ in range(40)))
        return junk, viewer

    junk, viewer = asyncio.run(run())
    assert set(junk) <= {"401", "429"}, junk
    assert sum(junk.values()) == 200 and junk["429"] > 0, junk
    assert viewer and {status for status, _ in viewer} == {"200"}, viewer
    assert max(seconds for _, seconds in viewer) < 2.0, viewer


def test_more_requests_than_connections_never_deadlock_the_pool(center_settings) -> None:  # type: ignore[no-untyped-def]
    """Six connections, two slots, 60 concurrent valid requests: each is 200 or 503 with
    Retry-After, within seconds, and the center still answers afterwards."""
    settings = with_center(center_settings, limits={
        "database_connections": 6, "concurrent_requests": 2, "admission_wait_s": 0.5,
        "connection_wait_s": 1.0,
    })  # fmt: skip
    live = start_server(settings)

    async def run() -> Counter[str]:
        async with from_address(VIEWER_ADDRESS, live) as client:
            tokens = [TOKENS["viewer"], TOKENS["operator"], TOKENS["admin"]] * 20
            return Counter(await asyncio.gather(*(answer(client, t) for t in tokens)))

    try:
        began = time.monotonic()
        answers = asyncio.run(run())
        elapsed = time.monotonic() - began
        after = httpx.get(
            f"{live.url}/api/v1/me", headers={"Authorization": f"Bearer {TOKENS['viewer']}"}
        )
    finally:
        live.stop()
    assert set(answers) <= {"200", "503"} and answers["200"] > 0, answers
    assert elapsed < 20, f"60 requests took {elapsed:.1f} s"
    assert after.status_code == 200


def test_failed_authentication_is_rate_limited_per_client_address(center_settings) -> None:  # type: ignore[no-untyped-def]
    """After 5 failures an address gets 429 with Retry-After even for new junk, while a token
    it used successfully still works and another address is unaffected."""
    settings = with_center(
        center_settings, limits={"auth_failures_burst": 5, "auth_failures_per_minute": 6}
    )
    live = start_server(settings)

    async def run() -> tuple[list[str], str, str, str]:
        async with (
            from_address(FLOOD_ADDRESS, live) as attacker,
            from_address(VIEWER_ADDRESS, live) as other,
        ):
            assert await answer(attacker, TOKENS["viewer"]) == "200"
            junk = [await answer(attacker, secrets.token_urlsafe(16)) for _ in range(8)]
            known = await answer(attacker, TOKENS["viewer"])
            bare = await attacker.get("/api/v1/me")
            return junk, known, str(bare.status_code), await answer(other, "junk-from-elsewhere")

    try:
        junk, known, bare, elsewhere = asyncio.run(run())
    finally:
        live.stop()
    assert junk == ["401"] * 5 + ["429"] * 3
    assert known == "200", "a token the address used successfully must still pass"
    assert bare == "401", "no token at all is a plain 401 (it costs nothing to answer)"
    assert elsewhere == "401", "another address has its own allowance"


def test_a_query_past_the_statement_timeout_is_503_not_a_hung_request(
    center_settings, center_db
) -> None:  # type: ignore[no-untyped-def]
    """With work_orders locked by another session, the list ends at the 0.5 s statement
    timeout with 503 and Retry-After instead of waiting for the lock."""
    settings = with_center(center_settings, limits={"statement_timeout_s": 0.5})
    live = start_server(settings)
    try:
        with psycopg.connect(center_db) as locker:
            locker.execute("LOCK TABLE work_orders IN ACCESS EXCLUSIVE MODE")
            began = time.monotonic()
            response = httpx.get(
                f"{live.url}/api/v1/work-orders", timeout=30,
                headers={"Authorization": f"Bearer {TOKENS['viewer']}"},
            )  # fmt: skip
            elapsed = time.monotonic() - began
            locker.rollback()
    finally:
        live.stop()
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert "statement timeout" in response.json()["detail"]
    assert elapsed < 5
