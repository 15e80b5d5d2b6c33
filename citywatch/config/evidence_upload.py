"""Evidence upload: gateways send snapshots, crops and clips to the command center, so the
console shows them when the center runs on another host (every real deployment).

The gateway side says where to send and how much disk the waiting queue may take; the center
side says where uploaded files are kept and how large one may be. An S3-compatible store is
future work (it needs boto3, which this build does not ship): uploads go to the center.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field, model_validator

from citywatch.config.base import ConfigModel, Duration


class GatewayEvidenceUpload(ConfigModel):
    """How one gateway uploads its evidence: to the center's ``/ingest/v1/evidence`` with the
    gateway's own broker credentials (HTTP Basic: its username and password secret)."""

    center_url: str = Field(
        pattern=r"^https?://[^/\s]+/?$",
        title="Center URL",
        description="the command center's base URL, e.g. https://center.example:8700",
    )
    ca_file: str | None = Field(
        default=None,
        title="Center CA",
        description="CA bundle of the center's certificate (default: the system CAs)",
    )
    budget_mb: float = Field(
        default=2048, gt=0, le=1_000_000, title="Queue disk budget",
        description=(
            "megabytes of evidence files waiting for upload; past it the oldest clips are"
            " dropped from the queue first, then the oldest images (each drop is logged)"
        ),
    )  # fmt: skip
    chunk_kb: int = Field(
        default=1024, ge=16, le=65_536, title="Chunk size",
        description="bytes per request, in KiB: an upload cut off resumes from its last chunk",
    )  # fmt: skip
    retry_min: Duration = Field(
        default=timedelta(seconds=2), description="first wait after a failed upload"
    )
    retry_max: Duration = Field(
        default=timedelta(minutes=5), description="longest wait between tries (backoff cap)"
    )
    timeout_s: float = Field(default=30.0, gt=0, le=600, description="per request")
    queue_path: str | None = Field(
        default=None,
        description="the queue's SQLite file; default: <data dir>/uploads-<gateway id>.sqlite",
    )

    @model_validator(mode="after")
    def _retry_order(self) -> GatewayEvidenceUpload:
        if self.retry_max < self.retry_min:
            raise ValueError("retry_max must be at least retry_min")
        return self

    @property
    def budget_bytes(self) -> int:
        return int(self.budget_mb * 1024 * 1024)


class CenterEvidenceUpload(ConfigModel):
    """Where the center keeps the evidence gateways upload, and how large a file may be."""

    store_dir: Path | None = Field(
        default=None,
        title="Upload store",
        description=(
            "folder uploaded evidence is kept in (by SHA-256); default: uploads/ in the last"
            " evidence root (the embedded stack's <data dir>/evidence)"
        ),
    )
    max_file_mb: float = Field(
        default=256, gt=0, le=100_000, title="Largest file",
        description="an upload announcing more is refused (413)",
    )  # fmt: skip
    concurrent_uploads: int = Field(
        default=8, ge=1, le=1000, description="upload requests served at once; more get 503"
    )

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1024 * 1024)
