"""The gate every API request passes before any route runs: who is asking, may they ask now,
and is there room to serve them.

Order matters, and is what keeps a flood of junk tokens from hurting the duty officer:

1. Credentials are read from the request line and headers only (no body is read for
   someone unknown): ``Authorization: Bearer``; on the few URLs a browser opens without
   headers (:data:`.signed_urls.URL_READABLE`), a signed URL or ``?access_token=``.
2. A token is looked up in the :class:`.TokenCache`; on a miss, with one pooled connection
   held only for that query (at most :data:`LOOKUPS` at once), before the route takes its
   own. So a request never holds two connections, and the pool cannot deadlock.
3. A client address whose failed authentications ran out (:class:`.FailureLimiter`) gets 429
   with Retry-After and costs no query; a token known good (now or recently) still passes.
4. Authenticated requests take one of a bounded number of slots (:class:`.Admission`) or,
   after a short wait, 503 with Retry-After. The live feed holds no slot (it is long-lived;
   its own limit is the number of feed clients).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping

from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.datastructures import Headers, QueryParams
from starlette.types import ASGIApp, Receive, Scope, Send

from citywatch.center.auth import User, user_of_token
from citywatch.center.signed_urls import BadSignature, Signer, url_readable
from citywatch.center.throttle import Admission, FailureLimiter, Overloaded, retry_after
from citywatch.center.token_cache import TokenCache
from citywatch.config.center import CenterLimits

log = logging.getLogger(__name__)

USER = "citywatch.user"
"""The scope key the authenticated :class:`.User` travels under to the route."""
LOOKUPS = 2
"""Token lookups running at once (each holds one pooled connection for one indexed query)."""
FEED_PATH = "/api/v1/feed"
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


class Refused(Exception):
    """A request turned away at the gate, with its status, reason and headers."""

    def __init__(self, status: int, detail: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail
        self.headers = dict(headers or {})


def _unauthorized(detail: str) -> Refused:
    return Refused(401, detail, _CHALLENGE)


class Authenticator:
    """Who a request speaks for; cheap for known tokens, bounded for everything else."""

    def __init__(
        self, pool: AsyncConnectionPool, limits: CenterLimits, signer: Signer | None = None
    ) -> None:
        self.pool = pool
        self.connection_wait_s = limits.connection_wait_s
        self.tokens = TokenCache(limits.token_cache_s, limits.unknown_token_cache_s)
        self.failures = FailureLimiter(limits.auth_failures_burst, limits.auth_failures_per_minute)
        self.signer = signer or Signer.fresh(limits.signed_url_s)
        self._lookups = asyncio.Semaphore(LOOKUPS)

    async def authenticate(
        self, method: str, path: str, headers: Headers, query: QueryParams, address: str
    ) -> User:
        """The request's user; raises :class:`Refused` (401, 429 or 503) otherwise."""
        scheme, _, token = headers.get("authorization", "").partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        by_url = method in ("GET", "HEAD") and url_readable(path)
        if not token and ("sig" in query or "access_token" in query):
            if not by_url:
                raise _unauthorized(
                    "tokens in the URL are accepted only on the live feed, evidence and"
                    " attachments; send the header Authorization: Bearer <token>"
                )
            if "sig" in query:
                return self._signed(path, query, address)
            token = query.get("access_token", "").strip()
        if not token:
            raise _unauthorized("a bearer token is required")
        cached = self.tokens.peek(token)
        if cached is not None and cached.user is not None and cached.fresh:
            return cached.user
        if cached is None or cached.user is None:  # a recently known token may always ask
            self._refuse_if_blocked(address)
        if cached is None or cached.user is not None:
            user = await self.tokens.user(token, self._lookup)
            if user is not None:
                return user
        raise self._failed(address, method, path, "unknown or revoked token")

    def _signed(self, path: str, query: QueryParams, address: str) -> User:
        self._refuse_if_blocked(address)
        try:
            return self.signer.verify(path, query, time.time())
        except BadSignature as exc:
            raise self._failed(address, "GET", path, str(exc)) from None

    def _refuse_if_blocked(self, address: str) -> None:
        wait_s = self.failures.retry_after_s(address)
        if wait_s is not None:
            seconds = retry_after(wait_s)
            raise Refused(
                429,
                f"too many failed authentications from {address}: retry in {seconds:g} s",
                {"Retry-After": f"{seconds:g}"},
            )

    def _failed(self, address: str, method: str, path: str, reason: str) -> Refused:
        """Count and log a failed authentication (never the token itself)."""
        if self.failures.failed(address):
            wait_s = retry_after(self.failures.retry_after_s(address) or 1)
            log.warning(
                "authentication failed from %s (%s %s): %s; its failures are used up, further"
                " ones are refused (429) for %g s",
                address, method, path, reason, wait_s,
            )  # fmt: skip
        else:
            log.warning("authentication failed from %s (%s %s): %s", address, method, path, reason)
        return _unauthorized(reason)

    async def _lookup(self, token_sha256: str) -> User | None:
        try:
            async with asyncio.timeout(self.connection_wait_s):
                await self._lookups.acquire()
        except TimeoutError:
            raise Refused(
                503, "the center is busy checking tokens; retry shortly", {"Retry-After": "1"}
            ) from None
        try:
            async with self.pool.connection(timeout=self.connection_wait_s) as conn:
                return await user_of_token(conn, token_sha256)
        except PoolTimeout:
            raise Refused(
                503, "no database connection came free in time; retry shortly",
                {"Retry-After": f"{retry_after(self.connection_wait_s):g}"},
            ) from None  # fmt: skip
        finally:
            self._lookups.release()


async def respond(send: Send, status: int, detail: str, headers: Mapping[str, str]) -> None:
    """A JSON error answer ``{"detail": …}``, as FastAPI's own."""
    body = json.dumps({"detail": detail}, ensure_ascii=False).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class Gate:
    """ASGI middleware: authenticate, rate-limit and admit every ``/api/`` request (see the
    module's docstring); the rest (console files, docs, health) passes untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        center = getattr(scope["app"].state, "center", None)
        if center is None:
            await respond(send, 503, "the center is starting", {"Retry-After": "1"})
            return
        client = scope.get("client")
        address = str(client[0]) if client else "unknown"
        try:
            user = await center.auth.authenticate(
                scope["method"], scope["path"], Headers(scope=scope),
                QueryParams(scope["query_string"]), address,
            )  # fmt: skip
        except Refused as refused:
            await respond(send, refused.status, refused.detail, refused.headers)
            return
        scope = {**scope, USER: user}
        if scope["path"] == FEED_PATH:
            await self.app(scope, receive, send)
            return
        admission: Admission = center.admission
        try:
            await admission.acquire()
        except Overloaded as busy:
            await respond(send, 503, str(busy), {"Retry-After": f"{busy.retry_after_s:g}"})
            return
        try:
            await self.app(scope, receive, send)
        finally:
            admission.release()
