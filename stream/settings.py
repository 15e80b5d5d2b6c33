"""Resolved connection settings of the stream processes (endpoints, not operator rules)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from citywatch.config import CitywatchConfig
from citywatch.config.secrets import resolve_secret
from citywatch.stack.endpoints import data_dir_of, resolve_endpoints
from citywatch.stream.kafka_security import PLAINTEXT, KafkaSecurity, kafka_security
from citywatch.stream.partitioning import key_resolution

FETCH_MAX_WAIT_MS = 100
"""How long a consumer's fetch may wait for records. Tansu answers a fetch that finds nothing
new only when this wait runs out (records arriving meanwhile do not end it early), so it
bounds how late a caught-up consumer sees the next record; idle, it costs one empty fetch
round trip per wait (see stream/faust_transport.py for the figures)."""


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
    replication_factor: int = 1
    min_insync_replicas: int = 1
    acks: str | int = "all"
    """Producer acks of every producer of the stream tier (aiokafka's "all", or 1)."""
    geo_resolution: int = 6
    """H3 resolution of the Kafka keys: :func:`~citywatch.stream.partitioning.key_resolution`
    of the site's dedup radii (6 for the demo's)."""
    share_group: str = "citywatch-bridge"
    bridge_id: str = "1"
    session_timeout_s: float = 10.0
    mqtt_tls: bool = False
    mqtt_ca_file: str | None = None
    mqtt_cert_file: str | None = None
    mqtt_key_file: str | None = None
    kafka_security: KafkaSecurity = PLAINTEXT
    """Given to every Kafka client the stream tier builds (see ``kafka_security``)."""

    @property
    def producer_acks(self) -> int:
        """:attr:`acks` as Faust's ``producer_acks`` (-1 is "all")."""
        return -1 if self.acks == "all" else int(self.acks)

    @property
    def kafka_client_options(self) -> dict[str, object]:
        """``bootstrap_servers`` and the security arguments, for any aiokafka client."""
        return {"bootstrap_servers": self.kafka_servers, **self.kafka_security.aiokafka_kwargs()}

    @property
    def kafka_servers(self) -> list[str]:
        return [server.strip() for server in self.kafka_bootstrap.split(",") if server.strip()]


def stream_settings(
    config: CitywatchConfig, data_dir: Path | None, bridge_id: str = "1"
) -> StreamSettings:
    """The stream processes' settings: the site's endpoints resolved (the embedded stack's when
    the config says ``embedded``) with the bridge's broker account."""
    root = data_dir_of(config, data_dir)
    endpoints = resolve_endpoints(config, root)
    mqtt = config.services.mqtt
    return StreamSettings(
        kafka_bootstrap=endpoints.kafka_bootstrap,
        kafka_idempotent=endpoints.kafka_idempotent,
        database_url=endpoints.database_url,
        mqtt_host=endpoints.mqtt_host,
        mqtt_port=endpoints.mqtt_port,
        mqtt_username=mqtt.bridge.username,
        mqtt_password=resolve_secret(mqtt.bridge.password, endpoints.secrets_dir),
        data_dir=root,
        site=config.site.id,
        topic_prefix=config.services.kafka.topic_prefix,
        partitions=config.services.kafka.partitions,
        replication_factor=config.services.kafka.replication_factor,
        min_insync_replicas=config.services.kafka.min_insync_replicas,
        acks=config.services.kafka.acks,
        geo_resolution=key_resolution(config.workflow.dedup.values()),
        share_group=mqtt.share_group,
        bridge_id=bridge_id,
        mqtt_tls=endpoints.mqtt_tls,
        mqtt_ca_file=endpoints.mqtt_ca_file,
        mqtt_cert_file=mqtt.bridge.cert_file,
        mqtt_key_file=mqtt.bridge.key_file,
        kafka_security=kafka_security(config.services.kafka, endpoints.secrets_dir),
    )
