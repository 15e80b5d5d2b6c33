"""The command center: where its API listens, who may use it, what the console shows.

Tokens never sit in the YAML: a user's token is a secret reference (``env:``, ``file:``,
``secret:``) or the token's SHA-256 only; ``citywatch center token add`` issues more
tokens into the database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from citywatch.config.base import ConfigModel, Identifier
from citywatch.config.secrets import SecretRef

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
    max_photo_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, description="largest upload")
    feed_keepalive_s: float = Field(default=15.0, gt=0, le=300)

    @model_validator(mode="after")
    def _unique_users(self) -> CenterConfig:
        names = [u.name for u in self.users]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"center users listed twice: {', '.join(twice)}")
        return self
