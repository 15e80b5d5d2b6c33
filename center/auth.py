"""Bearer tokens and roles.

Every request carries ``Authorization: Bearer <token>`` (the live feed may pass
``?access_token=`` instead, since a browser's EventSource cannot set headers). Only a token's
SHA-256 is stored. No token or an unknown one → 401; a known user without the role → 403.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from psycopg import AsyncConnection

from citywatch.config.center import ROLES, Role

TOKEN_BYTES = 32
CACHE_S = 5.0
"""How long a token lookup is remembered (a revoked token stops working within this)."""


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
    config names a new one.
    """
    names = [u[0] for u in users]
    async with conn.transaction():
        for name, role, display, digest in users:
            await conn.execute(
                """INSERT INTO center_users (name, role, display_name, source)
                   VALUES (%s, %s, %s, 'config')
                   ON CONFLICT (name) DO UPDATE SET role = EXCLUDED.role,
                       display_name = EXCLUDED.display_name, source = 'config',
                       disabled_at = NULL""",
                (name, role, display),
            )
            await conn.execute(
                """INSERT INTO center_tokens (token_sha256, user_name, label)
                   VALUES (%s, %s, 'config') ON CONFLICT (token_sha256) DO UPDATE
                   SET user_name = EXCLUDED.user_name, revoked_at = NULL""",
                (digest, name),
            )
            await conn.execute(
                """UPDATE center_tokens SET revoked_at = now()
                   WHERE user_name = %s AND label = 'config' AND token_sha256 <> %s
                     AND revoked_at IS NULL""",
                (name, digest),
            )
        await conn.execute(
            "UPDATE center_users SET disabled_at = now() WHERE source = 'config'"
            " AND NOT (name = ANY(%s)) AND disabled_at IS NULL",
            (names,),
        )


async def add_token(
    conn: AsyncConnection, name: str, role: Role, *, label: str = "", display_name: str = ""
) -> str:
    """Create (or re-enable, with this role) a user and issue a new token; returns the token,
    which is shown once and never stored."""
    token = new_token()
    async with conn.transaction():
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
    return token


async def revoke_tokens(conn: AsyncConnection, name: str) -> int:
    """Revoke every token of a user; returns how many were live."""
    cursor = await conn.execute(
        "UPDATE center_tokens SET revoked_at = now() WHERE user_name = %s AND revoked_at IS NULL",
        (name,),
    )
    return cursor.rowcount


class TokenCache:
    """Token hash → user, remembered for :data:`CACHE_S` (one query per user per window)."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[float, User | None]] = {}

    async def user(self, conn: AsyncConnection, token: str) -> User | None:
        digest = hash_token(token)
        now = time.monotonic()
        hit = self._seen.get(digest)
        if hit is not None and now - hit[0] < CACHE_S:
            return hit[1]
        cursor = await conn.execute(
            """SELECT u.name, u.role, u.display_name FROM center_tokens t
               JOIN center_users u ON u.name = t.user_name
               WHERE t.token_sha256 = %s AND t.revoked_at IS NULL AND u.disabled_at IS NULL""",
            (digest,),
        )
        row = await cursor.fetchone()
        user = User(row[0], row[1], row[2]) if row else None
        if len(self._seen) > 10_000:
            self._seen.clear()
        self._seen[digest] = (now, user)
        return user
