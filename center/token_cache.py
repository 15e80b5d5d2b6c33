"""Which user a bearer token belongs to, remembered so that authentication rarely costs a
database query: known tokens for a few seconds, unknown ones for longer (a flood of junk
tokens asks the database once per token, not once per request).

A known token whose entry has expired is kept (bounded) as *recently known*: it is asked
about again, but even from a client address that is blocked for failed authentications, so
a duty officer behind the same address as an attacker is not locked out.

Entries are keyed by an HMAC of the token under a key made at start, so the time a dict
lookup takes reveals nothing an attacker can steer; the stored SHA-256 is then compared in
constant time. Concurrent lookups of one token share a single query. Known and unknown tokens
are bounded separately, so junk can never push the duty officer's token out.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from citywatch.center.auth import User, hash_token

MAX_KNOWN = 10_000
MAX_UNKNOWN = 100_000


@dataclass(frozen=True)
class _Entry:
    token_sha256: str
    user: User | None
    expires: float


@dataclass(frozen=True)
class Cached:
    """A cache hit: the user, or None for a token known to be unknown or revoked; ``fresh``
    False for a known token whose time is up (ask the database again)."""

    user: User | None
    fresh: bool = True


class _Abandoned(Exception):
    """The request whose query others were waiting for was cancelled (its client left)."""


Lookup = Callable[[str], Awaitable[User | None]]
"""Token SHA-256 → its live user or None (the database query)."""


class TokenCache:
    def __init__(
        self,
        known_s: float,
        unknown_s: float,
        *,
        max_known: int = MAX_KNOWN,
        max_unknown: int = MAX_UNKNOWN,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.known_s, self.unknown_s = known_s, unknown_s
        self._limits = {True: max_known, False: max_unknown}
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._entries: dict[bool, OrderedDict[bytes, _Entry]] = {
            True: OrderedDict(),
            False: OrderedDict(),
        }
        self._pending: dict[bytes, asyncio.Future[User | None]] = {}
        self.queries = 0
        """Database lookups made (for tests and metrics)."""

    def _slot(self, token: str) -> bytes:
        return hmac.new(self._key, token.encode(), hashlib.sha256).digest()

    def peek(self, token: str) -> Cached | None:
        """The cached answer for ``token``, or None when the database must be asked."""
        slot, digest, now = self._slot(token), hash_token(token), self._clock()
        for known in (True, False):
            entry = self._entries[known].get(slot)
            if entry is None:
                continue
            if not hmac.compare_digest(entry.token_sha256, digest):
                del self._entries[known][slot]
            elif entry.expires > now:
                return Cached(entry.user)
            elif known:
                return Cached(entry.user, fresh=False)
            else:
                del self._entries[known][slot]
        return None

    async def user(self, token: str, lookup: Lookup) -> User | None:
        """The token's user (None: unknown or revoked), from the cache or one query shared by
        every request that asks for the same token meanwhile."""
        slot = self._slot(token)
        while True:
            cached = self.peek(token)
            if cached is not None and cached.fresh:
                return cached.user
            pending = self._pending.get(slot)
            if pending is None:
                break
            try:
                return await asyncio.shield(pending)
            except _Abandoned:
                continue  # the request that was asking went away: ask again
        future: asyncio.Future[User | None] = asyncio.get_running_loop().create_future()
        self._pending[slot] = future
        try:
            self.queries += 1
            user = await lookup(hash_token(token))
        except BaseException as exc:
            future.set_exception(exc if isinstance(exc, Exception) else _Abandoned())
            future.exception()  # retrieved: waiters re-raise it; none waiting is fine too
            raise
        finally:
            del self._pending[slot]
        self._remember(slot, hash_token(token), user)
        future.set_result(user)
        return user

    def _remember(self, slot: bytes, digest: str, user: User | None) -> None:
        known = user is not None
        self._entries[not known].pop(slot, None)
        ttl = self.known_s if known else self.unknown_s
        if ttl <= 0:
            return
        entries = self._entries[known]
        entries[slot] = _Entry(digest, user, self._clock() + ttl)
        entries.move_to_end(slot)
        while len(entries) > self._limits[known]:
            entries.popitem(last=False)

    def forget_user(self, name: str) -> None:
        """Drop the known tokens of ``name`` (their tokens were revoked or their role changed
        by this process: effective at once, not after the TTL)."""
        known = self._entries[True]
        for slot in [s for s, e in known.items() if e.user is not None and e.user.name == name]:
            del known[slot]

    def forget_unknown(self) -> None:
        """Drop every remembered unknown token (a token was just issued)."""
        self._entries[False].clear()
