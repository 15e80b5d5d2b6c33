"""Request dependencies every router uses: the center's state, a database connection, the
authenticated user and role checks.

Routers declare what they need in their signatures::

    async def kpis(db: Db, user: Viewer) -> ...

``Db`` is a pooled autocommit connection (wrap writes in ``async with db.transaction()``);
``Viewer``/``Operator``/``Admin`` authenticate and require at least that role.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, HTTPException, Query, Request, status
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from citywatch.center.auth import TokenCache, User, allows
from citywatch.center.settings import CenterSettings
from citywatch.config.center import Role

if TYPE_CHECKING:
    from citywatch.center.feed import Broadcaster


@dataclass
class CenterState:
    settings: CenterSettings
    pool: AsyncConnectionPool
    tokens: TokenCache
    feed: Broadcaster


def center_state(request: Request) -> CenterState:
    state: CenterState = request.app.state.center
    return state


State = Annotated[CenterState, Depends(center_state)]


async def connection(state: State) -> AsyncIterator[AsyncConnection]:
    async with state.pool.connection() as conn:
        yield conn


Db = Annotated[AsyncConnection, Depends(connection)]

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


async def current_user(
    request: Request,
    state: State,
    access_token: Annotated[
        str | None, Query(description="for EventSource clients, which cannot set headers")
    ] = None,
) -> User:
    """The user whose bearer token the request carries (401 without a valid one)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not (scheme.lower() == "bearer" and token.strip()):
        token = access_token or ""
    if not token.strip():
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "a bearer token is required", headers=_CHALLENGE
        )
    async with state.pool.connection() as conn:
        user = await state.tokens.user(conn, token.strip())
    if user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "unknown or revoked token", headers=_CHALLENGE
        )
    return user


def require(role: Role):  # type: ignore[no-untyped-def]
    """A dependency that authenticates and requires ``role`` or a higher one (403)."""

    async def check(user: Annotated[User, Depends(current_user)]) -> User:
        if not allows(user.role, role):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"{user.name} is {user.role}; this needs {role} or higher",
            )
        return user

    return check


Viewer = Annotated[User, Depends(require("viewer"))]
Operator = Annotated[User, Depends(require("operator"))]
Admin = Annotated[User, Depends(require("admin"))]
