"""The command center's Prometheus metrics: HTTP requests by route and status, the live
feed's clients and events, and the center's health (its event loop turns, its database
answers), served on ``citywatch center serve --metrics-port``.

Routes are labelled by their template (``/api/v1/workorders/{work_order_id}``), never by
the path a client sent, so the series stay bounded whatever URLs arrive; a request the gate
turned away before routing is labelled ``(not routed)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import psycopg
from prometheus_client import Counter, Gauge, Histogram
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from citywatch.metrics_server import Health, Heartbeat, component_registry

log = logging.getLogger(__name__)

CENTER_HEALTH = Health(starting="database")
CENTER_REGISTRY = component_registry(CENTER_HEALTH)

WATCH_S = 5.0
"""How often the center beats and asks its database ``SELECT 1``."""
SILENT_MAX_S = 60.0
NOT_ROUTED = "(not routed)"
NOTE = "citywatch.route_note"
"""The scope key under which :class:`RouteNote` leaves the route for :class:`RequestMetrics`."""

HTTP_REQUESTS = Counter(
    "citywatch_center_http_requests", "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"], registry=CENTER_REGISTRY,
)  # fmt: skip
HTTP_SECONDS = Histogram(
    "citywatch_center_http_request_seconds",
    "From a request's arrival to its response's start (a live feed's first byte), by route.",
    ["route"], registry=CENTER_REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)  # fmt: skip
FEED_CLIENTS = Gauge(
    "citywatch_center_feed_clients", "Live-feed (server-sent events) clients connected now.",
    registry=CENTER_REGISTRY,
)  # fmt: skip
FEED_EVENTS = Counter(
    "citywatch_center_feed_events", "Work-order events the live feed read for its clients.",
    registry=CENTER_REGISTRY,
)  # fmt: skip
FEED_CUT_OFF = Counter(
    "citywatch_center_feed_cut_off", "Live-feed clients cut off as too slow (they resume by id).",
    registry=CENTER_REGISTRY,
)  # fmt: skip


def route_of(scope: Scope) -> str:
    """The template of the route that serves ``scope``, as routing set it on the scope or,
    where a middleware passed a copy of the scope on, as :class:`RouteNote` noted it."""
    route = scope.get("route") or scope.get(NOTE, {}).get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else NOT_ROUTED


class RequestMetrics:
    """ASGI middleware counting each HTTP request when its response starts. Outermost, so
    the gate's refusals count too; the route comes from :class:`RouteNote`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        answered = False
        scope[NOTE] = {}  # shared by the copies of the scope middlewares pass on

        async def counting_send(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start" and not answered:
                answered = True
                record(scope, message["status"], time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            if not answered:  # an exception with no answer: the server answers 500
                record(scope, 500, time.perf_counter() - started)


class RouteNote:
    """ASGI middleware just outside the routes: notes which route answered, for
    :class:`RequestMetrics` (the gate passes a copy of the scope on, which routing fills)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        note = scope.get(NOTE)
        if note is None:
            await self.app(scope, receive, send)
            return

        async def noting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                note["route"] = scope.get("route")
            await send(message)

        await self.app(scope, receive, noting_send)


def record(scope: Scope, status: int, seconds: float) -> None:
    route = route_of(scope)
    HTTP_REQUESTS.labels(route, scope.get("method", ""), str(status)).inc()
    HTTP_SECONDS.labels(route).observe(seconds)


class CenterWatch:
    """Beats from the center's event loop and asks its database ``SELECT 1`` every
    :data:`WATCH_S`: ``/healthz`` fails when the loop is stuck, ``/readyz`` when the
    database does not answer."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool
        self.heartbeat = Heartbeat(SILENT_MAX_S)
        self.database_problem: str | None = "the database has not been asked yet"
        self._task: asyncio.Task[None] | None = None

    async def check_once(self) -> None:
        self.heartbeat.beat()
        try:
            async with self.pool.connection(timeout=WATCH_S) as conn:
                await conn.execute("SELECT 1")
        except (psycopg.Error, PoolTimeout) as exc:
            if self.database_problem is None:
                log.warning("the center's database does not answer: %s", exc)
            self.database_problem = f"the database does not answer: {type(exc).__name__}: {exc}"
        else:
            self.database_problem = None

    async def _run(self) -> None:
        while True:
            await self.check_once()
            await asyncio.sleep(WATCH_S)

    def start(self) -> CenterWatch:
        """Run in the current event loop, and answer the health probes of this process."""
        self._task = asyncio.create_task(self._run(), name="center-metrics-watch")
        CENTER_HEALTH.liveness["event_loop"] = self.heartbeat.probe
        CENTER_HEALTH.readiness["database"] = lambda: self.database_problem
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.database_problem = "the center is stopping"
