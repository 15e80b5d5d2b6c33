"""Users, tokens and the audit trail, for admins (users and tokens are the same as
``citywatch center token …`` on the server). Every change is audited with the admin's name
and address."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel, Field

from citywatch.center import audit
from citywatch.center.auth import add_token, revoke_tokens
from citywatch.center.deps import Acting, Admin, Db, State
from citywatch.center.params import Name, Text
from citywatch.config.center import Role

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])
UserName = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]


class TokenRequest(BaseModel):
    role: Role = "operator"
    label: Text = Field(default="", max_length=100, description="what the token is for")
    display_name: Text = Field(default="", max_length=100)


@router.get("/users")
async def users(db: Db, admin: Admin) -> list[dict[str, Any]]:
    """Every user, their role, where they come from (config or command) and live tokens."""
    cursor = await db.execute(
        """SELECT u.name, u.role, u.display_name, u.source, u.disabled_at,
                  count(t.*) FILTER (WHERE t.revoked_at IS NULL) AS live_tokens
           FROM center_users u LEFT JOIN center_tokens t ON t.user_name = u.name
           GROUP BY u.name ORDER BY u.name"""
    )
    keys = ("name", "role", "display_name", "source", "disabled_at", "live_tokens")
    return [dict(zip(keys, row, strict=True)) for row in await cursor.fetchall()]


@router.post("/users/{name}/tokens", status_code=status.HTTP_201_CREATED)
async def issue(
    name: UserName, body: TokenRequest, db: Db, state: State, admin: Admin, acting: Acting
) -> dict[str, str]:
    """Issue a token (creating the user, or setting their role); it is shown only here."""
    cursor = await db.execute("SELECT source FROM center_users WHERE name = %s", (name,))
    row = await cursor.fetchone()
    if row is not None and row[0] == "config":
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"{name} is defined in config: change center.users there"
        )
    token = await add_token(
        db, name, body.role, label=body.label, display_name=body.display_name, actor=acting
    )
    state.auth.tokens.forget_user(name)  # a changed role applies at once
    return {"name": name, "role": body.role, "token": token}


@router.delete("/users/{name}/tokens")
async def revoke(
    name: UserName, db: Db, state: State, admin: Admin, acting: Acting
) -> dict[str, int]:
    """Revoke every token of a user (at once in this process; other processes within the
    token cache's few seconds)."""
    revoked = await revoke_tokens(db, name, actor=acting)
    state.auth.tokens.forget_user(name)
    return {"revoked": revoked}


@router.get("/audit")
async def audit_trail(
    db: Db,
    admin: Admin,
    limit: Annotated[int, Query(ge=1, le=audit.MAX_PAGE)] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="next_before of the previous page")
    ] = None,
    actor: Annotated[Name | None, Query(description="only this actor's entries")] = None,
    action: Annotated[
        Name | None, Query(description="e.g. token.issued, workorder.dispatch")
    ] = None,
) -> dict[str, Any]:
    """Who changed what, from which address, newest first: tokens issued and revoked, users
    created, changed or disabled (also from config), work-order actions, photos attached."""
    return await audit.page(db, limit=limit, before=before, actor=actor, action=action)
