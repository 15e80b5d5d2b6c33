"""The command center's ASGI app: the API under ``/api/v1`` (OpenAPI docs at ``/docs``),
the live feed, and the web console at ``/``.

``create_app`` takes resolved settings, so tests and ``citywatch center serve`` build the
same app; the database schema must be current (the CLI migrates before serving). Every API
request passes the :mod:`.gate` (authentication, rate limits, admission) before a route runs;
every answer carries the :mod:`.hardening` headers.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from citywatch.center import (
    console,
    log_redaction,
    routes_admin,
    routes_auth,
    routes_feed,
    routes_ingest,
    routes_insight,
    routes_truth,
    routes_workorders,
)
from citywatch.center.auth import sync_config_users
from citywatch.center.deps import CenterState
from citywatch.center.feed import Broadcaster
from citywatch.center.gate import Authenticator, Gate
from citywatch.center.hardening import (
    SecurityHeaders,
    add_error_answers,
    content_security_policy,
)
from citywatch.center.metrics import CenterWatch, RequestMetrics, RouteNote
from citywatch.center.settings import CenterSettings
from citywatch.center.throttle import Admission
from citywatch.center.webhooks import Webhooks, claim_in, forget_old_claims
from citywatch.config.center import CenterLimits
from citywatch.storage.workorders import record_numbering_site

log = logging.getLogger(__name__)
API_VERSION = "1"


def open_pool(database_url: str, limits: CenterLimits) -> AsyncConnectionPool:
    """The API's pool: bounded waits, and a statement timeout on every connection, so one
    slow query cannot hold a connection (and a request slot) for long."""
    timeout_ms = str(round(limits.statement_timeout_s * 1000))

    async def configure(conn: AsyncConnection) -> None:
        await conn.execute(
            "SELECT set_config('statement_timeout', %s, false),"
            " set_config('idle_in_transaction_session_timeout', %s, false)",
            (timeout_ms, timeout_ms),
        )

    return AsyncConnectionPool(
        database_url, min_size=2, max_size=limits.database_connections, open=False,
        timeout=limits.connection_wait_s, kwargs={"autocommit": True}, configure=configure,
        name="center",
    )  # fmt: skip


def create_app(settings: CenterSettings) -> FastAPI:
    center = settings.config.center
    log_redaction.install()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log_redaction.install()  # again: the server may have configured logging since
        pool = open_pool(settings.database_url, center.limits)
        await pool.open(wait=True, timeout=30)
        async with pool.connection() as conn:
            await sync_config_users(conn, settings.config_tokens())
            await record_numbering_site(conn, settings.config.site.id, settings.config.site.timezone)
        feed = Broadcaster(pool, settings.database_url)
        await feed.start()
        if center.webhooks:
            await forget_old_claims(pool)
        notifier = Webhooks(
            center.webhooks, feed, settings.tz, settings.secrets_dir, claim_in(pool)
        )
        notifier.start()  # new-order notices to other systems, off the feed's path
        watch = CenterWatch(pool).start()
        limits = center.limits
        app.state.center = CenterState(
            settings, pool, Authenticator(pool, limits, settings.url_signer()),
            Admission(limits.concurrent_requests, limits.admission_wait_s), feed,
        )  # fmt: skip
        log.info("command center ready (site %s)", settings.config.site.id)
        try:
            yield
        finally:
            await watch.stop()
            await notifier.stop()
            await feed.stop()
            await pool.close()

    app = FastAPI(
        title="citywatch command center",
        version=API_VERSION,
        description=(
            "Work orders (工单) from citywatch's cameras, sensors and drone docks: list, detail,"
            " the actions of the 派遣—签收—处置—核查—结案 loop, a live feed of their events,"
            " evidence, KPIs and devices. Authenticate with `Authorization: Bearer <token>`;"
            " open the live feed and evidence in a browser by a signed URL"
            " (`POST /api/v1/signed-urls`)."
        ),
        lifespan=lifespan,
        docs_url=None,  # served below from the vendored swagger-ui: no CDN is reachable
        redoc_url=None,
    )
    # Outermost last: headers and the NUL check wrap everything, CORS answers preflights
    # before the gate asks for a token.
    app.add_middleware(RouteNote)  # innermost: which route answered, for RequestMetrics
    app.add_middleware(Gate)
    if center.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=list(center.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
        )  # fmt: skip
    app.add_middleware(SecurityHeaders, csp=content_security_policy(center))
    app.add_middleware(RequestMetrics)  # outermost: the gate's refusals count too
    add_error_answers(app)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        """The interactive API docs, with swagger-ui from /static/vendor (not a CDN); its one
        inline start-up script runs by a nonce, nothing else inline does."""
        vendor = "/static/vendor/swagger-ui-dist"
        page = get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} — API",
            swagger_js_url=f"{vendor}/swagger-ui-bundle.js",
            swagger_css_url=f"{vendor}/swagger-ui.css",
            swagger_favicon_url=f"{vendor}/favicon-32x32.png",
        )
        nonce = secrets.token_urlsafe(16)
        html = bytes(page.body).decode().replace("<script>", f'<script nonce="{nonce}">')
        csp = content_security_policy(center, script=f"'self' 'nonce-{nonce}'")
        return HTMLResponse(html, headers={"Content-Security-Policy": csp})

    @app.get("/healthz", tags=["health"], include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(routes_auth.router)
    app.include_router(routes_workorders.router)
    app.include_router(routes_feed.router)
    app.include_router(routes_insight.router)
    app.include_router(routes_admin.router)
    app.include_router(routes_ingest.router)
    app.include_router(routes_truth.router)
    app.include_router(console.router)
    return app
