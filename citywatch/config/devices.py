"""The device registry: gateways with their MQTT credentials, and the devices behind them.

A gateway is one MQTT client (one edge agent). The broker ACL generated from this registry
lets a gateway write only under its own devices' topic subtrees.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Literal

from pydantic import Field, model_validator

from citywatch.config.base import ConfigModel, Duration, Identifier
from citywatch.config.camera import CameraConfig
from citywatch.config.dock import DockConfig
from citywatch.config.evidence_upload import GatewayEvidenceUpload
from citywatch.config.secrets import SecretRef
from citywatch.config.sensor import SensorConfig


class MqttCredentials(ConfigModel):
    username: str | None = Field(default=None, description="defaults to the gateway id")
    password: SecretRef


class TlsConfig(ConfigModel):
    """The gateway's TLS to the broker; the URL's ``mqtts://`` turns TLS on even without it."""

    ca_file: str | None = Field(
        default=None,
        description="CA bundle for the broker certificate (default: services.mqtt.ca_file,"
        " else the system CAs)",
    )
    cert_file: str | None = Field(
        default=None,
        description="client certificate (mutual TLS); its CN is the gateway's broker identity",
    )
    key_file: str | None = Field(default=None, description="the client certificate's key")
    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="broker port when it differs from services.mqtt.url's (e.g. a listener"
        " that requires client certificates)",
    )

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> TlsConfig:
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("cert_file and key_file go together (mutual TLS)")
        return self


class Gateway(ConfigModel):
    """One edge box running one agent (camera, sensor or dock gateway)."""

    id: Identifier
    kind: Literal["camera", "sensor", "dock"]
    name: str = ""
    credentials: MqttCredentials
    tls: TlsConfig | None = None
    outbox_path: str | None = Field(
        default=None, description="durable outbox file; default: <data dir>/outbox-<id>.sqlite"
    )
    alerts_in_flight: int = Field(
        default=1,
        ge=1,
        le=1000,
        description=(
            "alerts of one device sent before the oldest one's receipt came back: 1 keeps strict"
            " order even across a loss (≈1 alert/s per device); more for busy cameras"
        ),
    )
    outbox_memory_items: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000,
        title="Outbox memory queue",
        description=(
            "messages kept in memory while the outbox disk cannot be written (full, read-only,"
            " I/O errors), written when it recovers; past this, new messages are refused and"
            " logged (about 2 KB each)"
        ),
    )
    resend_after: Duration = Field(
        default=timedelta(seconds=30),
        description="resend an alert (same id) when its receipt has not come back within this",
    )
    evidence_upload: GatewayEvidenceUpload | None = Field(
        default=None, description="upload evidence files to the center (none: they stay here)"
    )

    @property
    def username(self) -> str:
        return self.credentials.username or self.id


Device = CameraConfig | SensorConfig | DockConfig


class Devices(ConfigModel):
    gateways: tuple[Gateway, ...] = ()
    cameras: tuple[CameraConfig, ...] = ()
    sensors: tuple[SensorConfig, ...] = ()
    docks: tuple[DockConfig, ...] = ()

    def all(self) -> Iterator[tuple[str, Device]]:
        """Every device behind a gateway with its topic kind (camera, sensor, dock)."""
        for kind, section in (
            ("camera", self.cameras),
            ("sensor", self.sensors),
            ("dock", self.docks),
        ):
            for device in section:
                yield kind, device
