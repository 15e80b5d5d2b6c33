"""The command center: where its API listens, who may use it, what the console shows.

Tokens never sit in the YAML: a user's token is a secret reference (``env:``, ``file:``,
``secret:``) or the token's SHA-256 only; ``citywatch center token add`` issues more
tokens into the database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, IPvAnyAddress, IPvAnyNetwork, model_validator

from citywatch.config.base import ConfigModel, Identifier
from citywatch.config.device_status import DeviceStatusPolicy
from citywatch.config.evidence_upload import CenterEvidenceUpload
from citywatch.config.secrets import SecretRef
from citywatch.config.webhooks import WebhookTarget

Role = Literal["viewer", "operator", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "admin")
"""In rising order: an operator can do what a viewer can, and act on work orders; an admin
can also manage users and tokens."""


class CenterUser(ConfigModel):
    """A person or system (a 12345 platform's integration) allowed to use the API."""

    name: Identifier
    role: Role
    display_name: str = ""
    token: SecretRef | None = Field(default=None, description="env:NAME, file:/path or secret:NAME")
    token_sha256: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$", description="SHA-256 (hex) of the token"
    )

    @model_validator(mode="after")
    def _one_token(self) -> CenterUser:
        if (self.token is None) == (self.token_sha256 is None):
            raise ValueError(
                "give the user exactly one of token (a secret reference) or token_sha256"
            )
        return self


class Tiles(ConfigModel):
    """A raster tile server for the console map (optional: the site's GeoJSON is drawn
    without one)."""

    url: str = Field(description="e.g. https://tiles.example/{z}/{x}/{y}.png")
    attribution: str = ""
    max_zoom: int = Field(default=19, ge=1, le=22)


Origin = Annotated[str, Field(pattern=r"^https?://[A-Za-z0-9.\-\[\]:]+$")]
"""A web origin: scheme, host and optional port, no path."""


class CenterLimits(ConfigModel):
    """How the center stays up and fair under load or abuse: a bounded number of requests at
    once, short waits answered with 503 + Retry-After (never a 500), cheap authentication, and
    failed authentication rate-limited per client address (429 + Retry-After)."""

    database_connections: int = Field(
        default=16, ge=4, le=1000, title="Database connections",
        description="size of the API's connection pool (one per request at most, never two)",
    )  # fmt: skip
    concurrent_requests: int = Field(
        default=12, ge=1, le=10_000, title="Requests served at once",
        description=(
            "API requests served at the same time (the live feed not counted); more wait"
            " admission_wait_s for a slot, then get 503 with Retry-After"
        ),
    )  # fmt: skip
    admission_wait_s: float = Field(
        default=2.0, ge=0, le=60, title="Wait for a request slot",
        description="how long a request may queue for a slot before 503",
    )  # fmt: skip
    connection_wait_s: float = Field(
        default=5.0, gt=0, le=60, title="Wait for a database connection",
        description="how long a request may wait for a pooled connection before 503",
    )  # fmt: skip
    statement_timeout_s: float = Field(
        default=15.0, gt=0, le=3600, title="Statement timeout",
        description="PostgreSQL statement_timeout of the API's connections (longer → 503)",
    )  # fmt: skip
    token_cache_s: float = Field(
        default=5.0, ge=0, le=300, title="Known-token cache",
        description="a valid token is trusted this long without asking the database again"
        " (a token revoked from the command line stops working within this)",
    )  # fmt: skip
    unknown_token_cache_s: float = Field(
        default=30.0, ge=0, le=3600, title="Unknown-token cache",
        description="an unknown or revoked token is refused this long without a database query",
    )  # fmt: skip
    auth_failures_burst: int = Field(
        default=20, ge=1, le=100_000, title="Failed authentications allowed at once",
        description="failed authentications one client address may make before 429",
    )  # fmt: skip
    auth_failures_per_minute: float = Field(
        default=30.0, gt=0, le=100_000, title="Failed authentications per minute",
        description="the rate at which a client address regains failed authentications",
    )  # fmt: skip
    signed_url_s: float = Field(
        default=60.0, ge=5, le=3600, title="Signed URL lifetime",
        description="how long a signed feed or evidence URL opens (a live feed stays open)",
    )  # fmt: skip
    feed_clients: int = Field(
        default=1000, ge=1, le=100_000, title="Live feed clients",
        description="live-feed connections at once; more get 503 with Retry-After",
    )  # fmt: skip

    @model_validator(mode="after")
    def _fits(self) -> CenterLimits:
        verify_requests_fit_the_pool(self)
        return self


FEED_AND_AUTH_CONNECTIONS = 4
"""Pool connections kept out of the request slots: the live feed's reader, a reconnecting
feed client's backlog read, and token lookups (two at once)."""


def verify_requests_fit_the_pool(limits: CenterLimits) -> None:
    """Requests served at once must leave connections for the live feed and token lookups,
    so that no admitted request waits on the pool for long."""
    room = limits.database_connections - FEED_AND_AUTH_CONNECTIONS
    if limits.concurrent_requests > room:
        raise ValueError(
            f"concurrent_requests ({limits.concurrent_requests}) must be at most"
            f" database_connections − {FEED_AND_AUTH_CONNECTIONS} ({room}): raise"
            " database_connections or lower concurrent_requests"
        )


class CenterTls(ConfigModel):
    """HTTPS for the API, the live feed and the console, with the center's own certificate."""

    cert_file: Path = Field(title="Certificate", description="PEM certificate (chain) it presents")
    key_file: Path = Field(title="Private key", description="PEM key of that certificate")


class CenterConfig(ConfigModel):
    listen: str = Field(default="127.0.0.1", description="address the API binds")
    port: int = Field(default=8700, ge=0, le=65535, description="0: any free port")
    users: tuple[CenterUser, ...] = ()
    evidence_roots: tuple[Path, ...] = Field(
        default=(),
        description=(
            "folders evidence file:// URIs may point into (gateway evidence mirrored or mounted"
            " here); the embedded stack's <data_dir>/evidence is always one"
        ),
    )
    tiles: Tiles | None = None
    evidence_upload: CenterEvidenceUpload = Field(default_factory=CenterEvidenceUpload)
    webhooks: tuple[WebhookTarget, ...] = Field(default=(), description="new-order notices")
    device_status: DeviceStatusPolicy = Field(default_factory=DeviceStatusPolicy)
    max_photo_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, description="largest upload")
    feed_keepalive_s: float = Field(default=15.0, gt=0, le=300)
    limits: CenterLimits = Field(default_factory=CenterLimits, title="Limits")
    tls: CenterTls | Literal["embedded"] | None = Field(
        default=None, title="HTTPS",
        description=(
            "the center's certificate and key; 'embedded': the one the embedded stack's CA"
            " issues for 127.0.0.1 (citywatch stack up makes it); none: plain HTTP, for"
            " loopback or behind a reverse proxy that terminates TLS (see trusted_proxies)"
        ),
    )  # fmt: skip
    url_signing_key: SecretRef | None = Field(
        default=None, title="Signed URL key",
        description=(
            "secret every center process signs feed and evidence URLs with (env:, file: or"
            " secret:), so that behind a load balancer a URL one process minted opens at"
            " another and survives a restart; none: a fresh key per process (one process)"
        ),
    )  # fmt: skip
    trusted_proxies: tuple[IPvAnyAddress | IPvAnyNetwork, ...] = Field(
        default=(), title="Trusted reverse proxies",
        description=(
            "addresses or networks (CIDR, e.g. an ingress controller's pod range) of reverse"
            " proxies whose X-Forwarded-For and X-Forwarded-Proto are"
            " believed, so rate limits and the audit see the real client; none by default:"
            " a client cannot pose as another address by sending the header"
        ),
    )  # fmt: skip
    cors_origins: tuple[Origin, ...] = Field(
        default=(), title="CORS origins",
        description=(
            "other web origins (https://host[:port]) whose pages may call the API with a"
            " token; none by default, so only the console served by the center itself can"
        ),
    )  # fmt: skip

    @model_validator(mode="after")
    def _unique_users(self) -> CenterConfig:
        names = [u.name for u in self.users]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"center users listed twice: {', '.join(twice)}")
        return self
