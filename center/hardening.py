"""What every answer of the center carries for the browser, and what no input may cause.

- Security headers on every response: a Content-Security-Policy that runs only the
  console's own script files (no inline script, no other origin; map tiles from the
  configured tile server only), no framing (clickjacking), nosniff, no Referer (a signed URL
  must not leak to a tile server), and ``Cache-Control: no-store`` on API answers.
- A NUL character anywhere in the path or the query is 422 before any route sees it
  (PostgreSQL text cannot hold one: it used to surface as a 500).
- Database trouble, or a body that is not UTF-8, is never a 500: an exhausted pool, a statement past its timeout or a
  lost database is 503 with Retry-After; a value the database cannot store is 422.
"""

from __future__ import annotations

import logging
from urllib.parse import unquote_to_bytes, urlsplit

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from citywatch.center.gate import respond
from citywatch.config.center import CenterConfig

log = logging.getLogger(__name__)


def tile_source(url: str) -> str:
    """The CSP source of a tile URL template (``https://{s}.tiles.example/{z}/…`` →
    ``https://*.tiles.example``)."""
    parts = urlsplit(url.replace("{s}", "*"))
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def content_security_policy(config: CenterConfig, script: str = "'self'") -> str:
    """The console's policy: its own files only; ``script`` widens script-src (the API docs
    page passes a nonce for swagger-ui's start-up script)."""
    tiles = tile_source(config.tiles.url) if config.tiles else ""
    images = f"'self' data: blob: {tiles}".strip()
    return "; ".join((
        "default-src 'self'", f"script-src {script}", "style-src 'self'", f"img-src {images}",
        "media-src 'self' blob:", "connect-src 'self'", "font-src 'self'", "object-src 'none'",
        "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'",
    ))  # fmt: skip


class SecurityHeaders:
    """ASGI middleware: the headers above, unless a route set its own."""

    def __init__(self, app: ASGIApp, csp: str) -> None:
        self.app = app
        self.common = [
            (b"content-security-policy", csp.encode()),
            (b"x-frame-options", b"DENY"),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if b"\x00" in unquote_to_bytes(scope.get("raw_path") or b"") + unquote_to_bytes(
            scope["query_string"]
        ):
            await respond(send, 422, "request parameters must not contain NUL characters", {})
            return
        api = scope["path"].startswith("/api/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in self.common if k not in present]
                if api and b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def _unavailable(detail: str, retry_s: int) -> JSONResponse:
    return JSONResponse({"detail": detail}, 503, headers={"Retry-After": str(retry_s)})


def add_error_answers(app: FastAPI) -> None:
    """Map database trouble to 503/422 (see the module's docstring), logged once each, and a
    body that is not UTF-8 to 422 (FastAPI decodes a JSON route's body even when the client
    declared another type)."""

    @app.exception_handler(UnicodeDecodeError)
    async def undecodable(request: Request, exc: UnicodeDecodeError) -> JSONResponse:
        return JSONResponse({"detail": "the request body is not UTF-8 JSON"}, 422)

    @app.exception_handler(PoolTimeout)
    async def pool_exhausted(request: Request, exc: PoolTimeout) -> JSONResponse:
        log.warning("%s %s: no database connection came free (%s)", request.method,
                    request.url.path, exc)  # fmt: skip
        return _unavailable("the center is busy: no database connection came free; retry", 1)

    @app.exception_handler(psycopg.errors.QueryCanceled)
    async def statement_timeout(request: Request, exc: psycopg.Error) -> JSONResponse:
        log.warning("%s %s: query cancelled (%s)", request.method, request.url.path, exc)
        return _unavailable(
            "the query took longer than the center's statement timeout; narrow it or retry", 5
        )

    @app.exception_handler(psycopg.OperationalError)
    async def database_lost(request: Request, exc: psycopg.Error) -> JSONResponse:
        log.error("%s %s: database unavailable (%s)", request.method, request.url.path, exc)
        return _unavailable("the database is unavailable; retry shortly", 5)

    @app.exception_handler(psycopg.DataError)
    async def unstorable(request: Request, exc: psycopg.Error) -> JSONResponse:
        log.warning("%s %s: value refused by the database (%s)", request.method,
                    request.url.path, exc)  # fmt: skip
        return JSONResponse({"detail": f"a value is out of range or malformed: {exc}"}, 422)
