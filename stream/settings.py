"""Resolved connection settings of the stream processes (endpoints, not operator rules)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StreamSettings:
    kafka_bootstrap: str
    kafka_idempotent: bool
    database_url: str
    mqtt_host: str
    mqtt_port: int
    mqtt_username: str
    mqtt_password: str
    data_dir: Path
    site: str = "demo"
    topic_prefix: str = "citywatch"
    partitions: int = 1
    share_group: str = "citywatch-bridge"
    bridge_id: str = "1"
    session_timeout_s: float = 10.0

    @property
    def kafka_servers(self) -> list[str]:
        return [server.strip() for server in self.kafka_bootstrap.split(",") if server.strip()]
