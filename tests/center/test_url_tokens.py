"""Credentials in URLs: ``?access_token=`` only where a browser cannot send a header (the live
feed, evidence, attachments), short-lived signed URLs minted by an authenticated call, and
no token or signature in clear in any log line (uvicorn's access log included)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.center.conftest import TOKENS, auth, free_port

pytestmark = pytest.mark.integration

VIEWER_TOKEN = TOKENS["viewer"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/work-orders"),
        ("GET", "/api/v1/me"),
        ("GET", "/api/v1/kpis/summary"),
        ("POST", "/api/v1/work-orders/wo-x/actions/sign"),
        ("POST", "/api/v1/signed-urls"),
        ("DELETE", "/api/v1/admin/users/someone/tokens"),
    ],
)
def test_a_token_in_the_query_is_refused_where_a_header_can_be_sent(
    client, method: str, path: str
) -> None:  # type: ignore[no-untyped-def]
    """JSON routes and every action take the token from the Authorization header only."""
    token = TOKENS["admin"]
    response = client.request(method, f"{path}?access_token={token}", json={"path": "/api/v1/feed"})
    assert response.status_code == 401
    assert "Authorization: Bearer" in response.json()["detail"]


def test_signed_feed_url_opens_the_feed_without_a_header_and_expires(client) -> None:  # type: ignore[no-untyped-def]
    """A minted URL opens the feed with no header; it names no token, and a wrong signature or
    an expiry in the past is 401."""
    minted = client.post(
        "/api/v1/signed-urls", json={"path": "/api/v1/feed"}, headers=auth("viewer")
    )
    assert minted.status_code == 200
    url = minted.json()["url"]
    assert VIEWER_TOKEN not in url and url.startswith("/api/v1/feed?")
    with client.stream("GET", url + "&after=0") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
    query = parse_qs(urlsplit(url).query)
    forged = url.replace(query["sig"][0], "0" * 64)
    assert client.get(forged).status_code == 401
    expired = url.replace(f"exp={query['exp'][0]}", f"exp={int(time.time()) - 1}")
    assert client.get(expired).status_code == 401


def test_a_signed_url_opens_only_its_own_path(client) -> None:  # type: ignore[no-untyped-def]
    """An evidence URL's signature does not open another alert's evidence, and JSON routes
    cannot be signed at all."""
    minted = client.post(
        "/api/v1/signed-urls", json={"path": "/api/v1/alerts/a-1/evidence/snapshot"},
        headers=auth("viewer"),
    ).json()["url"]  # fmt: skip
    assert client.get(minted).status_code == 404  # opened, and there is no such alert
    other = minted.replace("/alerts/a-1/", "/alerts/a-2/")
    assert client.get(other).status_code == 401
    refused = client.post(
        "/api/v1/signed-urls", json={"path": "/api/v1/work-orders"}, headers=auth("viewer")
    )
    assert refused.status_code == 422 and "cannot be signed" in refused.text
    assert client.post("/api/v1/signed-urls", json={"path": "/api/v1/feed"}).status_code == 401


def test_feed_and_evidence_still_take_a_query_token_for_clients_without_headers(client) -> None:  # type: ignore[no-untyped-def]
    """?access_token= works where a browser cannot send a header (and nowhere else)."""
    with client.stream("GET", f"/api/v1/feed?after=0&access_token={VIEWER_TOKEN}") as response:
        assert response.status_code == 200
    evidence = client.get(f"/api/v1/alerts/none/evidence/snapshot?access_token={VIEWER_TOKEN}")
    assert evidence.status_code == 404 and "no alert" in evidence.json()["detail"]


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def access_log(center_settings) -> Iterator[tuple[str, Lines]]:  # type: ignore[no-untyped-def]
    """The center under uvicorn with its access log on (as ``citywatch center serve`` runs)."""
    import uvicorn

    from citywatch.center.app import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(center_settings), host="127.0.0.1", port=port,
                                           log_level="info"))  # fmt: skip
    lines = Lines()
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    logging.getLogger("uvicorn.access").addHandler(lines)
    try:
        yield f"http://127.0.0.1:{port}", lines
    finally:
        logging.getLogger("uvicorn.access").removeHandler(lines)
        server.should_exit = True
        thread.join(15)


def test_the_access_log_never_shows_a_token_or_a_signature(access_log) -> None:  # type: ignore[no-untyped-def]
    """Requests with ?access_token= and a signed URL are logged with both values masked."""
    from citywatch.center.log_redaction import RedactSecrets

    url, lines = access_log
    httpx.get(f"{url}/api/v1/alerts/x/evidence/snapshot?access_token={VIEWER_TOKEN}", timeout=10)
    minted = httpx.post(f"{url}/api/v1/signed-urls", json={"path": "/api/v1/alerts/x/evidence/clip"},
                        headers=auth("viewer"), timeout=10).json()["url"]  # fmt: skip
    httpx.get(f"{url}{minted}", timeout=10)
    signature = parse_qs(urlsplit(minted).query)["sig"][0]
    deadline = time.monotonic() + 5
    while len(lines.lines) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    text = "\n".join(lines.lines)
    assert "/evidence/snapshot?access_token=[redacted]" in text
    assert VIEWER_TOKEN not in text and signature not in text
    assert any(isinstance(f, RedactSecrets) for f in logging.getLogger("uvicorn.access").filters)
