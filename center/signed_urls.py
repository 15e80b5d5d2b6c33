"""Short-lived signed URLs, for what a browser fetches without being able to send a header:
the live feed (``EventSource``) and evidence or attachments in ``<img>``/``<video>``.

An authenticated call mints one (``POST /api/v1/signed-urls``): the path, the user, their
role and an expiry, signed with HMAC-SHA256 under the key of ``center.url_signing_key`` (shared by every center
process behind a load balancer), or else a key the process makes at start. The URL opens
only that path, only with GET, and only until it expires (a live feed, once open, stays
open); it carries no token, so a leaked URL or log line gives nothing lasting away. With a
per-process key, URLs do not survive a restart of the center: the console mints a new one
when its feed reconnects.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlencode

from citywatch.center.auth import User
from citywatch.config.center import ROLES

URL_READABLE = (
    re.compile(r"^/api/v1/feed$"),
    re.compile(r"^/api/v1/alerts/[^/]+/evidence/[^/]+$"),
    re.compile(r"^/api/v1/attachments/[^/]+$"),
)
"""Paths a browser must be able to open by URL alone (decoded form); nothing else accepts a
signed URL or ``?access_token=``."""

PARAMS = ("exp", "user", "role", "sig")


def url_readable(path: str) -> bool:
    """Whether ``path`` (decoded) is one a browser opens without headers."""
    return any(pattern.match(path) for pattern in URL_READABLE)


class BadSignature(ValueError):
    """A signed URL that is malformed, forged, for another path, or expired."""


@dataclass(frozen=True)
class Signer:
    key: bytes
    lifetime_s: float

    @classmethod
    def fresh(cls, lifetime_s: float) -> Signer:
        """A key of this process alone: its URLs open nowhere else, and not after a restart."""
        return cls(secrets.token_bytes(32), lifetime_s)

    @classmethod
    def shared(cls, secret: str, lifetime_s: float) -> Signer:
        """The key every center process derives from ``center.url_signing_key``, so a URL
        one process minted opens at any other (behind a load balancer) and after a restart."""
        return cls(
            hashlib.sha256(b"citywatch signed URLs\n" + secret.encode()).digest(), lifetime_s
        )

    def _mac(self, path: str, name: str, role: str, expires: int) -> str:
        message = f"{path}\n{name}\n{role}\n{expires}".encode()
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()

    def sign(self, path: str, user: User, now: float) -> tuple[str, int]:
        """The signed URL of ``path`` (as the API gave it, percent-encoded) for ``user``, and
        its expiry (Unix seconds)."""
        decoded = unquote(path)
        if not url_readable(decoded):
            raise BadSignature(
                f"{path!r} cannot be signed: only the live feed (/api/v1/feed), evidence"
                " (/api/v1/alerts/…/evidence/…) and attachments (/api/v1/attachments/…) can"
            )
        expires = int(now + self.lifetime_s)
        query = urlencode({"exp": expires, "user": user.name, "role": user.role,
                           "sig": self._mac(decoded, user.name, user.role, expires)})  # fmt: skip
        return f"{quote(decoded, safe='/')}?{query}", expires

    def verify(self, path: str, params: Mapping[str, str], now: float) -> User:
        """The user a signed URL of ``path`` (decoded) speaks for; raises
        :class:`BadSignature` for anything else."""
        try:
            expires, name, role, sig = (params[key] for key in PARAMS)
            expires_at = int(expires)
        except (KeyError, ValueError):
            raise BadSignature("a signed URL needs exp, user, role and sig") from None
        if role not in ROLES or not hmac.compare_digest(
            sig.encode(), self._mac(path, name, role, expires_at).encode()
        ):
            raise BadSignature("the URL's signature does not match")
        if expires_at < now:
            raise BadSignature("the signed URL has expired: ask the API for a new one")
        return User(name, role)  # role checked against ROLES above
