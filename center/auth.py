"""Bearer tokens and roles.

Every request carries ``Authorization: Bearer <token>``; what a browser opens without
headers (the live feed, evidence) takes a short-lived signed URL instead
(:mod:`.signed_urls`). Only a token's SHA-256 is stored. No token or an unknown one → 401; a
known user without the role → 403. Every change to users and tokens is audited.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from psycopg import AsyncConnection

from citywatch.center.audit import COMMAND_LINE, CONFIG, Actor, record
from citywatch.config.center import ROLES, Role

TOKEN_BYTES = 32
BY_COMMAND = Actor(COMMAND_LINE)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def allows(have: str, need: Role) -> bool:
    """Whether role ``have`` includes role ``need`` (admin ⊃ operator ⊃ viewer)."""
    return ROLES.index(have) >= ROLES.index(need)


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    display_name: str = ""


async def sync_config_users(conn: AsyncConnection, users: list[tuple[str, str, str, str]]) -> None:
    """Make the database's config-sourced users and tokens exactly the config's.

    Users added by command are left alone; a config user's old tokens are revoked when the
    config names a new one. What changed is audited (actor ``config``).
    """
    names = [u[0] for u in users]
    actor = Actor(CONFIG)
    async with conn.transaction():
        before = {
            row[0]: (row[1], row[2], row[3], row[4])
            for row in await (
                await conn.execute(
                    "SELECT name, role, display_name, source, disabled_at IS NOT NULL"
                    " FROM center_users"
                )
            ).fetchall()
        }
        for name, role, display, digest in users:
            await conn.execute(
                """INSERT INTO center_users (name, role, display_name, source)
                   VALUES (%s, %s, %s, 'config')
                   ON CONFLICT (name) DO UPDATE SET role = EXCLUDED.role,
                       display_name = EXCLUDED.display_name, source = 'config',
                       disabled_at = NULL""",
                (name, role, display),
            )
            issued = await conn.execute(
                """INSERT INTO center_tokens (token_sha256, user_name, label)
                   VALUES (%s, %s, 'config') ON CONFLICT (token_sha256) DO UPDATE
                   SET user_name = EXCLUDED.user_name, revoked_at = NULL
                   WHERE center_tokens.revoked_at IS NOT NULL
                      OR center_tokens.user_name <> EXCLUDED.user_name""",
                (digest, name),
            )
            revoked = await conn.execute(
                """UPDATE center_tokens SET revoked_at = now()
                   WHERE user_name = %s AND label = 'config' AND token_sha256 <> %s
                     AND revoked_at IS NULL""",
                (name, digest),
            )
            now = (role, display, "config", False)
            if before.get(name) != now:
                was = before.get(name)
                await record(conn, actor, "user.created" if was is None else "user.changed",
                             name, role=role, previous_role=was[0] if was else None)  # fmt: skip
            if issued.rowcount:
                await record(conn, actor, "token.issued", name, label="config")
            if revoked.rowcount:
                await record(conn, actor, "tokens.revoked", name, count=revoked.rowcount)
        disabled = await conn.execute(
            "UPDATE center_users SET disabled_at = now() WHERE source = 'config'"
            " AND NOT (name = ANY(%s)) AND disabled_at IS NULL RETURNING name",
            (names,),
        )
        for (name,) in await disabled.fetchall():
            await record(conn, actor, "user.disabled", name, reason="no longer in config")


async def add_token(
    conn: AsyncConnection, name: str, role: Role, *, label: str = "", display_name: str = "",
    actor: Actor = BY_COMMAND,
) -> str:  # fmt: skip
    """Create (or re-enable, with this role) a user and issue a new token; returns the token,
    which is shown once and never stored."""
    token = new_token()
    async with conn.transaction():
        cursor = await conn.execute(
            "SELECT role, disabled_at IS NOT NULL FROM center_users WHERE name = %s", (name,)
        )
        was = await cursor.fetchone()
        await conn.execute(
            """INSERT INTO center_users (name, role, display_name, source)
               VALUES (%s, %s, %s, 'command')
               ON CONFLICT (name) DO UPDATE SET role = EXCLUDED.role, disabled_at = NULL""",
            (name, role, display_name),
        )
        await conn.execute(
            "INSERT INTO center_tokens (token_sha256, user_name, label) VALUES (%s, %s, %s)",
            (hash_token(token), name, label),
        )
        if was is None or was != (role, False):
            await record(conn, actor, "user.created" if was is None else "user.changed", name,
                         role=role, previous_role=was[0] if was else None)  # fmt: skip
        await record(conn, actor, "token.issued", name, role=role, label=label)
    return token


async def revoke_tokens(conn: AsyncConnection, name: str, *, actor: Actor = BY_COMMAND) -> int:
    """Revoke every token of a user; returns how many were live."""
    async with conn.transaction():
        cursor = await conn.execute(
            "UPDATE center_tokens SET revoked_at = now()"
            " WHERE user_name = %s AND revoked_at IS NULL",
            (name,),
        )
        await record(conn, actor, "tokens.revoked", name, count=cursor.rowcount)
    return cursor.rowcount


async def user_of_token(conn: AsyncConnection, token_sha256: str) -> User | None:
    """The live user whose token has this SHA-256 (None: unknown, revoked or disabled)."""
    cursor = await conn.execute(
        """SELECT u.name, u.role, u.display_name FROM center_tokens t
           JOIN center_users u ON u.name = t.user_name
           WHERE t.token_sha256 = %s AND t.revoked_at IS NULL AND u.disabled_at IS NULL""",
        (token_sha256,),
    )
    row = await cursor.fetchone()
    return User(row[0], row[1], row[2]) if row else None
