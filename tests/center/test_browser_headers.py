"""Browser hardening of the console and the API: a Content-Security-Policy with no inline
script, no framing, nosniff, no Referer, no caching of API answers, CORS closed unless the
config opens it to named origins, and a console page with no inline script or handler."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from citywatch.center.settings import STATIC_DIR
from citywatch.config.center import CenterConfig
from tests.center.conftest import auth, with_center

pytestmark = pytest.mark.integration


class InlineCode(HTMLParser):
    """Finds inline scripts, on… handler attributes and style attributes in a page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._script_without_src = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name.lower() for name, _ in attrs}
        self.found += [f"<{tag} {n}=…>" for n in names if n.startswith("on") or n == "style"]
        self._script_without_src = tag == "script" and "src" not in names

    def handle_data(self, data: str) -> None:
        if self._script_without_src and data.strip():
            self.found.append(f"inline <script>: {data.strip()[:60]}")

    def handle_endtag(self, tag: str) -> None:
        self._script_without_src = False


def test_the_console_page_has_no_inline_script_handler_or_style() -> None:
    """index.html runs only script files, so the CSP needs no 'unsafe-inline'."""
    parser = InlineCode()
    parser.feed((STATIC_DIR / "index.html").read_text())
    assert parser.found == []


@pytest.mark.parametrize(
    "path", ["/", "/static/app.js", "/api/v1/me", "/api/v1/work-orders", "/healthz"]
)
def test_every_answer_carries_the_security_headers(client, path: str) -> None:  # type: ignore[no-untyped-def]
    """Console, assets, API (and its 401s) all get CSP, frame denial, nosniff, no Referer."""
    for headers in (auth("viewer"), {}):
        response = client.get(path, headers=headers)
        csp = response.headers["content-security-policy"]
        assert "script-src 'self';" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        if path.startswith("/api/"):
            assert response.headers["cache-control"] == "no-store"


def test_the_api_docs_run_their_one_inline_script_by_nonce(client) -> None:  # type: ignore[no-untyped-def]
    """/docs allows swagger-ui's start-up script by a fresh nonce, nothing else inline."""
    first, second = client.get("/docs"), client.get("/docs")
    csp = first.headers["content-security-policy"]
    nonce = csp.split("'nonce-")[1].split("'")[0]
    assert f'<script nonce="{nonce}">' in first.text and "unsafe-inline" not in csp
    assert nonce not in second.headers["content-security-policy"]


def test_cors_is_closed_by_default(client) -> None:  # type: ignore[no-untyped-def]
    """Another origin's preflight and request get no Access-Control-Allow-Origin."""
    origin = {"Origin": "https://evil.example"}
    preflight = client.options("/api/v1/work-orders", headers=origin | {
        "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"})  # fmt: skip
    response = client.get("/api/v1/work-orders", headers=origin | auth("viewer"))
    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-origin" not in response.headers


def test_cors_opens_only_to_the_configured_origins(center_settings) -> None:  # type: ignore[no-untyped-def]
    """With center.cors_origins set, that origin is allowed and any other still is not."""
    from fastapi.testclient import TestClient

    from citywatch.center.app import create_app

    settings = with_center(center_settings, cors_origins=["https://wall.example"])
    with TestClient(create_app(settings)) as client:
        ask = {
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        }
        allowed = client.options("/api/v1/me", headers={"Origin": "https://wall.example"} | ask)
        other = client.options("/api/v1/me", headers={"Origin": "https://evil.example"} | ask)
    assert allowed.headers["access-control-allow-origin"] == "https://wall.example"
    assert "access-control-allow-origin" not in other.headers


def test_the_policy_admits_the_configured_tile_server_and_no_other() -> None:
    """Map tiles load from the tile server named in config; {s} subdomains become a wildcard."""
    from citywatch.center.hardening import content_security_policy, tile_source

    config = CenterConfig.model_validate(
        {"tiles": {"url": "https://{s}.tiles.example/{z}/{x}/{y}.png"}}
    )
    assert tile_source(config.tiles.url) == "https://*.tiles.example"  # type: ignore[union-attr]
    assert "img-src 'self' data: blob: https://*.tiles.example;" in content_security_policy(config)
    assert "img-src 'self' data: blob:;" in content_security_policy(CenterConfig())
