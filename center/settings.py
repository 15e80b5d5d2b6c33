"""What one running command center needs to know, resolved from config and the stack."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path

from citywatch.center.auth import hash_token
from citywatch.center.signed_urls import Signer
from citywatch.config import CitywatchConfig
from citywatch.config.secrets import resolve_secret
from citywatch.workorder.sla import site_zone

STATIC_DIR = Path(__file__).resolve().parent / "static"


@dataclass(frozen=True)
class CenterSettings:
    config: CitywatchConfig
    database_url: str
    secrets_dir: Path | None = None
    evidence_roots: tuple[Path, ...] = ()
    config_dir: Path | None = None
    """Folder of the site's config file: ``site.boundary_geojson`` is relative to it."""

    @property
    def tz(self) -> tzinfo:
        """The site's zone, for SLA clocks and days in KPIs."""
        return site_zone(self.config.site.timezone)

    def url_signer(self) -> Signer:
        """The signer of feed and evidence URLs: the configured shared key, else a fresh one."""
        center = self.config.center
        lifetime = center.limits.signed_url_s
        if center.url_signing_key is None:
            return Signer.fresh(lifetime)
        return Signer.shared(resolve_secret(center.url_signing_key, self.secrets_dir), lifetime)

    def config_tokens(self) -> list[tuple[str, str, str, str]]:
        """(name, role, display name, token SHA-256) of every user the config lists."""
        users: list[tuple[str, str, str, str]] = []
        for user in self.config.center.users:
            digest = user.token_sha256
            if digest is None:
                assert user.token is not None
                digest = hash_token(resolve_secret(user.token, self.secrets_dir))
            users.append((user.name, user.role, user.display_name, digest))
        return users
