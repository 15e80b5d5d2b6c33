"""From the device registry to broker accounts, secrets and resolved service endpoints.

This is where config meets the running stack, so the CLI (and the tests' fixture) can start
the embedded services and hand each process the addresses and credentials it needs.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from citywatch.config import CitywatchConfig
from citywatch.config.secrets import resolve_secret, secret_name
from citywatch.config.services import EMBEDDED
from citywatch.contracts import Channel
from citywatch.contracts.topics import (
    UPLINK_CHANNELS,
    TopicAddress,
    fleet_filter,
    workorder_events_topic,
)
from citywatch.stack.accounts import MqttAccount
from citywatch.stack.launcher import EmbeddedStack, StackInfo


class EndpointError(RuntimeError):
    """A service cannot be reached as configured; the message says what to run or set."""


def data_dir_of(config: CitywatchConfig, override: Path | None = None) -> Path:
    """The data directory: ``--data-dir``, ``$CITYWATCH_DATA_DIR``, the config, or a default.

    The default lives outside the checkout because the stack's services drop root for their
    own users, who must be able to reach it (a checkout under /root is not reachable).
    """
    chosen = override or os.environ.get("CITYWATCH_DATA_DIR") or config.services.data_dir
    if chosen:
        return Path(chosen).absolute()
    if os.geteuid() == 0:
        return Path("/var/lib/citywatch") / config.site.id
    return Path.home() / ".local" / "state" / "citywatch" / config.site.id


def secrets_dir_of(data_dir: Path) -> Path:
    return Path(os.environ.get("CITYWATCH_SECRETS_DIR", data_dir / "secrets"))


def secret_refs(config: CitywatchConfig) -> list[str]:
    """Every credential reference in the config."""
    refs = [g.credentials.password for g in config.devices.gateways]
    refs += [config.services.mqtt.bridge.password, config.services.mqtt.center.password]
    if config.services.database.password:
        refs.append(config.services.database.password)
    refs += [user.token for user in config.center.users if user.token]
    return refs


def ensure_secrets(config: CitywatchConfig, secrets_dir: Path) -> list[str]:
    """Generate a random value for each ``secret:NAME`` that does not exist yet (mode 0600)."""
    secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    created = []
    for ref in secret_refs(config):
        name = secret_name(ref)
        if name is None or (secrets_dir / name).exists():
            continue
        path = secrets_dir / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(24) + "\n")
        created.append(name)
    return created


def mqtt_accounts(config: CitywatchConfig, secrets_dir: Path) -> list[MqttAccount]:
    """Broker accounts: each gateway writes only under its own devices' subtrees."""
    site = config.site.id
    accounts = []
    for gateway in config.devices.gateways:
        publish = [TopicAddress(site, "gateway", gateway.id, Channel.STATUS).topic]
        subscribe = []
        for kind, device_id in config.gateway_devices(gateway.id):
            publish += [TopicAddress(site, kind, device_id, c).topic for c in UPLINK_CHANNELS]
            subscribe.append(TopicAddress(site, kind, device_id, Channel.RECEIPTS).topic)
        accounts.append(
            MqttAccount(
                username=gateway.username,
                password=resolve_secret(gateway.credentials.password, secrets_dir),
                publish=tuple(publish),
                subscribe=tuple(subscribe),
            )
        )
    mqtt = config.services.mqtt
    accounts.append(
        MqttAccount(
            username=mqtt.bridge.username,
            password=resolve_secret(mqtt.bridge.password, secrets_dir),
            publish=(fleet_filter(Channel.RECEIPTS), workorder_events_topic(site)),
            subscribe=tuple(fleet_filter(c) for c in UPLINK_CHANNELS),
        )
    )
    accounts.append(
        MqttAccount(
            username=mqtt.center.username,
            password=resolve_secret(mqtt.center.password, secrets_dir),
            publish=(),
            subscribe=(
                *(fleet_filter(c) for c in (Channel.STATUS, Channel.TELEMETRY)),
                workorder_events_topic(site),
            ),
        )
    )
    return accounts


def embedded_stack(config: CitywatchConfig, data_dir: Path) -> EmbeddedStack:
    """The embedded stack of ``data_dir`` with accounts from the config (secrets generated)."""
    secrets_dir = secrets_dir_of(data_dir)
    ensure_secrets(config, secrets_dir)
    return EmbeddedStack(data_dir / "stack", mqtt_accounts(config, secrets_dir))


@dataclass(frozen=True)
class Endpoints:
    """Where each service is, after resolving ``embedded`` against the running stack."""

    mqtt_host: str
    mqtt_port: int
    kafka_bootstrap: str
    kafka_idempotent: bool
    database_url: str
    secrets_dir: Path


def resolve_endpoints(config: CitywatchConfig, data_dir: Path) -> Endpoints:
    services = config.services
    secrets_dir = secrets_dir_of(data_dir)
    needs_stack = EMBEDDED in (services.mqtt.url, services.kafka.bootstrap, services.database.url)
    info: StackInfo | None = None
    if needs_stack:
        info = EmbeddedStack(data_dir / "stack").status()
        if info is None or not all(s.running for s in info.services):
            raise EndpointError(
                f"the embedded stack in {data_dir / 'stack'} is not running:"
                " start it with `citywatch stack up` (or point services.* at external URLs)"
            )
    mqtt_url = info.mqtt_url if services.mqtt.url == EMBEDDED and info else services.mqtt.url
    parts = urlsplit(mqtt_url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise EndpointError(f"services.mqtt.url must look like mqtt://host:port, got {mqtt_url!r}")
    if services.kafka.bootstrap == EMBEDDED and info:
        bootstrap, idempotent = info.kafka_bootstrap, info.kafka_idempotent
    else:
        bootstrap = services.kafka.bootstrap
        idempotent = True
    if services.kafka.idempotent_producer is not None:
        idempotent = services.kafka.idempotent_producer
    if services.database.url == EMBEDDED and info:
        database_url = info.database_url
    else:
        database_url = services.database.url
        if services.database.password:
            from psycopg.conninfo import make_conninfo  # only here: gateways lack psycopg

            database_url = make_conninfo(
                database_url, password=resolve_secret(services.database.password, secrets_dir)
            )
    return Endpoints(
        mqtt_host=parts.hostname,
        mqtt_port=parts.port or (8883 if parts.scheme == "mqtts" else 1883),
        kafka_bootstrap=bootstrap,
        kafka_idempotent=idempotent,
        database_url=database_url,
        secrets_dir=secrets_dir,
    )
