"""Request dependencies every router uses: the center's state, a database connection, the
authenticated user and role checks.

Routers declare what they need in their signatures::

    async def kpis(db: Db, user: Viewer) -> ...

Authentication happened before any route ran (:mod:`.gate`); ``Viewer``/``Operator``/``Admin``
read its result and require at least that role. ``Db`` is a pooled autocommit connection
(wrap writes in ``async with db.transaction()``), taken only once the user is known and given
back as soon as the route function returns (before a file or stream is sent), so a request
holds one connection at most and only while it runs its queries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from citywatch.center.audit import Actor
from citywatch.center.auth import User, allows
from citywatch.center.gate import USER, Authenticator
from citywatch.center.settings import CenterSettings
from citywatch.center.throttle import Admission
from citywatch.config.center import Role

if TYPE_CHECKING:
    from citywatch.center.feed import Broadcaster


@dataclass
class CenterState:
    settings: CenterSettings
    pool: AsyncConnectionPool
    auth: Authenticator
    admission: Admission
    feed: Broadcaster


def center_state(request: Request) -> CenterState:
    state: CenterState = request.app.state.center
    return state


State = Annotated[CenterState, Depends(center_state)]

_bearer = HTTPBearer(auto_error=False, description="a token from `citywatch center token add`")


def current_user(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
) -> User:
    """The user the gate authenticated (401 if the request did not pass it)."""
    user = request.scope.get(USER)
    if not isinstance(user, User):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "a bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )  # fmt: skip
    return user


CurrentUser = Annotated[User, Depends(current_user)]


async def connection(state: State, user: CurrentUser) -> AsyncIterator[AsyncConnection]:
    """A pooled connection for the route (its wait is bounded: 503 when none comes free)."""
    async with state.pool.connection(
        timeout=state.settings.config.center.limits.connection_wait_s
    ) as conn:
        yield conn


Db = Annotated[AsyncConnection, Depends(connection, scope="function")]


def require(role: Role):  # type: ignore[no-untyped-def]
    """A dependency that requires an authenticated user with ``role`` or a higher one (403)."""

    async def check(user: CurrentUser) -> User:
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


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def actor(request: Request, user: CurrentUser) -> Actor:
    """Who acts and from which address, for the audit trail."""
    return Actor(user.name, client_address(request))


Acting = Annotated[Actor, Depends(actor)]
