"""The command center's ASGI app: the API under ``/api/v1`` (OpenAPI docs at ``/docs``),
the live feed, and the web console at ``/``.

``create_app`` takes resolved settings, so tests and ``citywatch center serve`` build the
same app; the database schema must be current (the CLI migrates before serving).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from psycopg_pool import AsyncConnectionPool

from citywatch.center import (
    console,
    routes_admin,
    routes_feed,
    routes_insight,
    routes_workorders,
)
from citywatch.center.auth import TokenCache, User, sync_config_users
from citywatch.center.deps import CenterState, Viewer
from citywatch.center.feed import Broadcaster
from citywatch.center.settings import CenterSettings

log = logging.getLogger(__name__)
API_VERSION = "1"


def create_app(settings: CenterSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = AsyncConnectionPool(
            settings.database_url, min_size=2, max_size=16, open=False,
            kwargs={"autocommit": True}, name="center",
        )  # fmt: skip
        await pool.open(wait=True, timeout=30)
        async with pool.connection() as conn:
            await sync_config_users(conn, settings.config_tokens())
        feed = Broadcaster(pool, settings.database_url)
        await feed.start()
        app.state.center = CenterState(settings, pool, TokenCache(), feed)
        log.info("command center ready (site %s)", settings.config.site.id)
        try:
            yield
        finally:
            await feed.stop()
            await pool.close()

    app = FastAPI(
        title="citywatch command center",
        version=API_VERSION,
        description=(
            "Work orders (工单) from citywatch's cameras, sensors and drone docks: list, detail,"
            " the actions of the 派遣—签收—处置—核查—结案 loop, a live feed of their events,"
            " evidence, KPIs and devices. Authenticate with `Authorization: Bearer <token>`."
        ),
        lifespan=lifespan,
        docs_url=None,  # served below from the vendored swagger-ui: no CDN is reachable
        redoc_url=None,
    )

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        """The interactive API docs, with swagger-ui from /static/vendor (not a CDN)."""
        vendor = "/static/vendor/swagger-ui-dist"
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} — API",
            swagger_js_url=f"{vendor}/swagger-ui-bundle.js",
            swagger_css_url=f"{vendor}/swagger-ui.css",
            swagger_favicon_url=f"{vendor}/favicon-32x32.png",
        )

    @app.get("/api/v1/me", tags=["auth"])
    async def me(user: Viewer) -> User:
        """Who the token belongs to, and their role."""
        return user

    @app.get("/healthz", tags=["health"], include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(routes_workorders.router)
    app.include_router(routes_feed.router)
    app.include_router(routes_insight.router)
    app.include_router(routes_admin.router)
    app.include_router(console.router)
    return app
