"""Users and tokens, for admins (the same as ``citywatch center token …`` on the server)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, status
from pydantic import BaseModel, Field

from citywatch.center.auth import add_token, revoke_tokens
from citywatch.center.deps import Admin, Db
from citywatch.config.center import Role

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])
UserName = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]


class TokenRequest(BaseModel):
    role: Role = "operator"
    label: str = Field(default="", max_length=100, description="what the token is for")
    display_name: str = Field(default="", max_length=100)


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
async def issue(name: UserName, body: TokenRequest, db: Db, admin: Admin) -> dict[str, str]:
    """Issue a token (creating the user, or setting their role); it is shown only here."""
    cursor = await db.execute("SELECT source FROM center_users WHERE name = %s", (name,))
    row = await cursor.fetchone()
    if row is not None and row[0] == "config":
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"{name} is defined in config: change center.users there"
        )
    token = await add_token(db, name, body.role, label=body.label, display_name=body.display_name)
    return {"name": name, "role": body.role, "token": token}


@router.delete("/users/{name}/tokens")
async def revoke(name: UserName, db: Db, admin: Admin) -> dict[str, int]:
    """Revoke every token of a user (effective within seconds)."""
    return {"revoked": await revoke_tokens(db, name)}
