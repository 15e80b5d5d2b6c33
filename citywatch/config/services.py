"""Where the services are: the embedded stack by default, external ones by URL.

``embedded`` means the local stack of ``citywatch stack up`` in the data directory; a URL
points at an existing MQTT cluster, Kafka cluster or TimescaleDB instead, by config alone.

Every link can run over TLS: ``mqtts://`` always means TLS (the host name checked, against
``ca_file`` or the system CAs; ``tls: embedded`` makes the embedded stack's own CA), Kafka
takes ``SSL``/``SASL_SSL`` (SCRAM or PLAIN) or mutual TLS, PostgreSQL ``sslmode`` and
``sslrootcert``. Settings that contradict each other (TLS files with a plain ``mqtt://``
URL, a SASL password over an unencrypted link) are refused at load, never half-applied.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from citywatch.config.base import ConfigModel, Duration
from citywatch.config.secrets import SecretRef

EMBEDDED = "embedded"


class ServiceAccount(ConfigModel):
    username: str
    password: SecretRef
    cert_file: str | None = Field(
        default=None, description="client certificate for mutual TLS with an mqtts:// broker"
    )
    key_file: str | None = Field(default=None, description="its private key")


MqttTlsMode = Literal["off", "embedded"]


class MqttService(ConfigModel):
    url: str = Field(
        default=EMBEDDED,
        description="'embedded' or mqtt://host:port, or mqtts://host:port for TLS (always on)",
    )
    tls: MqttTlsMode = Field(
        default="off",
        description=(
            "'embedded': the embedded stack makes a private CA, its Mosquitto listens with TLS"
            " only, and every citywatch client connects with TLS; gateways by certificate"
        ),
    )
    ca_file: str | None = Field(
        default=None,
        description=(
            "CA bundle that signed an mqtts:// broker's certificate, for the bridge, the"
            " center and gateways without their own tls.ca_file (default: the system CAs)"
        ),
    )
    bridge: ServiceAccount = ServiceAccount(
        username="citywatch-bridge", password="secret:mqtt-bridge"
    )
    center: ServiceAccount = ServiceAccount(
        username="citywatch-center", password="secret:mqtt-center"
    )
    share_group: str = Field(default="citywatch-bridge", description="$share group of the bridges")
    max_queued_messages: int = Field(
        default=1_000_000,
        ge=1,
        title="Embedded broker queue limit",
        description=(
            "QoS 1 messages the embedded Mosquitto queues for one offline or slow client (a"
            " stopped bridge's persistent session) before it drops new ones; what it drops,"
            " each gateway's outbox sends again until its receipt comes"
        ),
    )

    @property
    def uses_tls(self) -> bool:
        """Whether clients connect with TLS: an mqtts:// URL or the embedded stack's CA."""
        return self.tls == "embedded" or urlsplit(self.url).scheme == "mqtts"

    @model_validator(mode="after")
    def _tls_is_consistent(self) -> MqttService:
        verify_mqtt_tls_settings(self)
        return self


def verify_mqtt_tls_settings(mqtt: MqttService) -> None:
    """TLS files with a plain broker, or the embedded CA with an external broker, contradict.

    A plain ``mqtt://`` URL with a CA or client certificate configured is refused rather
    than silently upgraded or silently ignored: the operator meant one of the two.
    """
    scheme = urlsplit(mqtt.url).scheme
    if mqtt.tls == "embedded" and mqtt.url != EMBEDDED:
        raise ValueError(
            "tls: embedded is the embedded stack's own CA; for an external broker write an"
            " mqtts:// url (and ca_file if its CA is not a system one)"
        )
    files = [
        name
        for name, value in (
            ("ca_file", mqtt.ca_file),
            ("bridge.cert_file", mqtt.bridge.cert_file),
            ("center.cert_file", mqtt.center.cert_file),
        )
        if value
    ]
    if files and scheme != "mqtts":
        raise ValueError(
            f"{', '.join(files)} given but url {mqtt.url!r} is not mqtts://: TLS settings"
            " need an mqtts:// url (write mqtts://host:8883), or remove them"
        )
    for account in (mqtt.bridge, mqtt.center):
        if bool(account.cert_file) != bool(account.key_file):
            raise ValueError(f"{account.username}: cert_file and key_file go together")


KafkaProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaService(ConfigModel):
    bootstrap: str = Field(default=EMBEDDED, description="'embedded' or host:port[,host:port]")
    topic_prefix: str = "citywatch"
    partitions: int = Field(
        default=12,
        ge=1,
        le=1024,
        title="Partitions per topic",
        description=(
            "partitions of each pipeline topic, made when a topic is created: the most stream"
            " workers that share the load (alerts are keyed by a geographic cell, so a city"
            " spreads over all of them; 12 cost the embedded broker no measurable start time"
            " or throughput); more later only by hand (kafka-topics --alter)"
        ),
    )
    replication_factor: int = Field(
        default=1,
        ge=1,
        le=16,
        description=(
            "copies of each partition on the brokers, when a topic is created (3 for a"
            " production cluster); at most the number of brokers"
        ),
    )
    min_insync_replicas: int = Field(
        default=1,
        ge=1,
        le=16,
        description=(
            "topic config min.insync.replicas: with acks=all a write is acknowledged once this"
            " many copies have it (2 with replication 3: one broker may fail, none is lost)"
        ),
    )
    acks: Literal["all", 1] = Field(
        default="all",
        description=(
            "producer acks of the bridge and the workers: 'all' (nothing acknowledged to a"
            " device before min_insync_replicas copies hold it) or 1 (the leader only)"
        ),
    )
    idempotent_producer: bool | None = Field(
        default=None,
        description=(
            "no duplicates from a producer's own retries (needs acks=all); default: on for"
            " external Kafka, off for the embedded broker (Tansu in memory refuses it)"
        ),
    )
    security_protocol: KafkaProtocol = Field(
        default="PLAINTEXT",
        description="SSL (TLS, optionally mutual) or SASL_SSL (a login over TLS) for a real cluster",
    )
    sasl_mechanism: KafkaSaslMechanism | None = Field(
        default=None, description="with SASL_*: SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN"
    )
    username: str | None = Field(default=None, description="SASL username")
    password: SecretRef | None = Field(default=None, description="SASL password")
    ca_file: str | None = Field(
        default=None, description="CA bundle of the brokers' certificates (default: system CAs)"
    )
    cert_file: str | None = Field(default=None, description="client certificate (mutual TLS)")
    key_file: str | None = Field(default=None, description="its private key")

    @model_validator(mode="after")
    def _security_is_consistent(self) -> KafkaService:
        verify_kafka_security(self)
        verify_kafka_durability(self)
        return self


def verify_kafka_durability(kafka: KafkaService) -> None:
    """min.insync.replicas above the replication factor makes every acks=all write fail;
    an idempotent producer needs acks=all."""
    if kafka.min_insync_replicas > kafka.replication_factor:
        raise ValueError(
            f"min_insync_replicas {kafka.min_insync_replicas} is more than replication_factor"
            f" {kafka.replication_factor}: no write could be acknowledged (use replication 3,"
            " min ISR 2 on a 3-broker cluster)"
        )
    if kafka.idempotent_producer and kafka.acks != "all":
        raise ValueError("idempotent_producer needs acks: all (Kafka refuses it otherwise)")


def verify_kafka_security(kafka: KafkaService) -> None:
    """A SASL login needs its three settings; TLS files need a TLS protocol; no clear PLAIN."""
    protocol = kafka.security_protocol
    sasl = protocol.startswith("SASL_")
    if sasl and not (kafka.sasl_mechanism and kafka.username and kafka.password):
        raise ValueError(f"security_protocol {protocol} needs sasl_mechanism, username, password")
    if not sasl and (kafka.sasl_mechanism or kafka.username or kafka.password):
        raise ValueError(
            f"sasl_mechanism/username/password given but security_protocol is {protocol}:"
            " use SASL_SSL"
        )
    if protocol == "SASL_PLAINTEXT" and kafka.sasl_mechanism == "PLAIN":
        raise ValueError(
            "SASL PLAIN over SASL_PLAINTEXT sends the password in clear: use SASL_SSL"
            " (or SCRAM-SHA-512)"
        )
    tls_files = [f for f in ("ca_file", "cert_file", "key_file") if getattr(kafka, f)]
    if tls_files and protocol not in ("SSL", "SASL_SSL"):
        raise ValueError(f"{', '.join(tls_files)} given but security_protocol is {protocol}")
    if bool(kafka.cert_file) != bool(kafka.key_file):
        raise ValueError("cert_file and key_file go together (mutual TLS)")
    if kafka.bootstrap == EMBEDDED and protocol != "PLAINTEXT":
        raise ValueError(
            "the embedded Kafka broker listens on loopback without TLS or SASL:"
            " security_protocol applies to an external bootstrap"
        )


class TimescalePolicies(ConfigModel):
    """Retention, compression and aggregate refresh, applied at every migration (each stream
    worker start and ``citywatch db migrate``) when TimescaleDB is in use: see
    deploy/timescaledb.md."""

    alerts_retention: Duration = Field(
        default=timedelta(days=730), description="drop alert chunks older than this"
    )
    telemetry_retention: Duration = Field(
        default=timedelta(days=180), description="drop telemetry chunks older than this"
    )
    telemetry_compress_after: Duration = Field(
        default=timedelta(days=7),
        description=(
            "compress telemetry chunks older than this (TimescaleDB 2.11 or later: older"
            " releases cannot take late readings into compressed chunks, so nothing is compressed)"
        ),
    )
    aggregate_refresh: Duration = Field(
        default=timedelta(minutes=15),
        description=(
            "how often alerts_hourly is refreshed; each refresh reaches back"
            " workflow.late_data + 1 h, so a late backlog is counted in its hour"
        ),
    )


PgSslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


class DatabaseService(ConfigModel):
    """The database; TLS through libpq: ``sslmode`` and ``sslrootcert`` here or in the URL
    (``postgresql://…?sslmode=verify-full&sslrootcert=/etc/…``) reach psycopg unchanged."""

    url: str = Field(default=EMBEDDED, description="'embedded' or postgresql://user@host:port/db")
    password: SecretRef | None = Field(default=None, description="for an external database")
    sslmode: PgSslMode | None = Field(
        default=None,
        description="libpq sslmode for an external database; verify-full checks CA and host",
    )
    sslrootcert: str | None = Field(
        default=None, description="CA file for sslmode verify-ca/verify-full (libpq sslrootcert)"
    )
    timescale: TimescalePolicies = TimescalePolicies()
    retry_max: Duration = Field(
        default=timedelta(seconds=30),
        ge=timedelta(milliseconds=100),
        title="Longest wait between database retries",
        description=(
            "the stream worker retries a database step through an outage, doubling its wait"
            " from 0.5 s up to this; a shorter cap resumes sooner after a long outage"
        ),
    )

    @model_validator(mode="after")
    def _ssl_is_consistent(self) -> DatabaseService:
        if (self.sslmode or self.sslrootcert) and self.url == EMBEDDED:
            raise ValueError(
                "sslmode/sslrootcert apply to an external database url; the embedded"
                " PostgreSQL listens on loopback only"
            )
        if self.sslrootcert and self.sslmode not in ("verify-ca", "verify-full"):
            raise ValueError("sslrootcert is used by sslmode verify-ca or verify-full: set one")
        return self


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
