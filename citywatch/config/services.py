"""Where the services are: the embedded stack by default, external ones by URL.

``embedded`` means the local stack of ``citywatch stack up`` in the data directory; a URL
points at an existing MQTT cluster, Kafka cluster or TimescaleDB instead, by config alone.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field

from citywatch.config.base import ConfigModel, Duration
from citywatch.config.secrets import SecretRef

EMBEDDED = "embedded"


class ServiceAccount(ConfigModel):
    username: str
    password: SecretRef


class MqttService(ConfigModel):
    url: str = Field(default=EMBEDDED, description="'embedded' or mqtt(s)://host:port")
    bridge: ServiceAccount = ServiceAccount(
        username="citywatch-bridge", password="secret:mqtt-bridge"
    )
    center: ServiceAccount = ServiceAccount(
        username="citywatch-center", password="secret:mqtt-center"
    )
    share_group: str = Field(default="citywatch-bridge", description="$share group of the bridges")


class KafkaService(ConfigModel):
    bootstrap: str = Field(default=EMBEDDED, description="'embedded' or host:port[,host:port]")
    topic_prefix: str = "citywatch"
    partitions: int = Field(default=1, ge=1, le=1024)
    idempotent_producer: bool | None = Field(
        default=None, description="default: on for external Kafka, off for the embedded broker"
    )


class TimescalePolicies(ConfigModel):
    """Retention and compression, applied at every start when TimescaleDB is present."""

    alerts_retention: Duration = Field(
        default=timedelta(days=730), description="drop alert chunks older than this"
    )
    telemetry_retention: Duration = Field(
        default=timedelta(days=180), description="drop telemetry chunks older than this"
    )
    telemetry_compress_after: Duration = Field(
        default=timedelta(days=7), description="compress telemetry chunks older than this"
    )
    aggregate_refresh: Duration = Field(
        default=timedelta(minutes=15), description="refresh interval of alerts_hourly"
    )


class DatabaseService(ConfigModel):
    url: str = Field(default=EMBEDDED, description="'embedded' or postgresql://user@host:port/db")
    password: SecretRef | None = Field(default=None, description="for an external database")
    timescale: TimescalePolicies = TimescalePolicies()


class Services(ConfigModel):
    data_dir: Path | None = Field(
        default=None,
        description=(
            "embedded stack, generated secrets, outboxes and logs; default $CITYWATCH_DATA_DIR,"
            " else /var/lib/citywatch/<site> as root, ~/.local/state/citywatch/<site> otherwise"
        ),
    )
    mqtt: MqttService = MqttService()
    kafka: KafkaService = KafkaService()
    database: DatabaseService = DatabaseService()
