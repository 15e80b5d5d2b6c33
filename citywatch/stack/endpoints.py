"""From the device registry to broker accounts, secrets and resolved service endpoints.

This is where config meets the running stack, so the CLI (and the tests' fixture) can start
the embedded services and hand each process the addresses and credentials it needs,
TLS included: an ``mqtts://`` URL always resolves to TLS, and ``services.mqtt.tls:
embedded`` to the embedded stack's CA, its TLS ports and each gateway's own certificate.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from citywatch.config import CitywatchConfig
from citywatch.config.devices import Gateway
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
from citywatch.stack.tls import EmbeddedCa


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
    if config.center.url_signing_key:
        refs.append(config.center.url_signing_key)
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


def replace_secret(ref: str, secrets_dir: Path) -> str:
    """Write a new random value for ``secret:NAME`` or ``file:/path`` (mode 0600, atomic).

    An ``env:`` secret lives in the environment of whoever runs the gateway and cannot be
    rotated from here. Returns the new value.
    """
    name = secret_name(ref)
    if name is not None:
        path = secrets_dir / name
    elif ref.startswith("file:"):
        path = Path(ref.removeprefix("file:"))
    else:
        raise EndpointError(
            f"{ref} is an environment variable: set the new value where the gateway runs"
        )
    value = secrets.token_urlsafe(24)
    tmp = path.with_name(f".{path.name}.new")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    os.replace(tmp, path)
    return value


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
    """The embedded stack of ``data_dir`` with accounts from the config (secrets generated).

    With ``services.mqtt.tls: embedded`` the stack's CA, server certificate and one client
    certificate per gateway are made first (once), so the broker starts with TLS.
    """
    secrets_dir = secrets_dir_of(data_dir)
    ensure_secrets(config, secrets_dir)
    if config.services.mqtt.tls == "embedded":
        EmbeddedCa.of_stack(data_dir / "stack").ensure(
            [gateway.username for gateway in config.devices.gateways]
        )
    return EmbeddedStack(
        data_dir / "stack",
        mqtt_accounts(config, secrets_dir),
        mqtt_max_queued=config.services.mqtt.max_queued_messages,
    )


@dataclass(frozen=True)
class Endpoints:
    """Where each service is, after resolving ``embedded`` against the running stack."""

    mqtt_host: str
    mqtt_port: int
    kafka_bootstrap: str
    kafka_idempotent: bool
    database_url: str
    secrets_dir: Path
    mqtt_tls: bool = False
    mqtt_ca_file: str | None = None
    """The CA that signed the broker (None with TLS: the system CAs)."""
    mqtt_identity_port: int | None = None
    """The embedded broker's TLS port that takes a device's identity from its certificate."""
    stack_ca: EmbeddedCa | None = None


@dataclass(frozen=True)
class ClientTls:
    """How one client reaches the broker: its port and TLS files (all None: plain MQTT)."""

    port: int
    tls: bool
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


def gateway_tls(gateway: Gateway, endpoints: Endpoints) -> ClientTls:
    """A gateway's link to the broker: its ``tls:`` block over the site's defaults.

    On the embedded stack with TLS, a gateway connects with the certificate the stack's CA
    issued for it, to the port that takes its identity from that certificate; otherwise
    with the configured CA (or the system CAs) and its own client certificate if any.
    """
    own = gateway.tls
    ca_file = (own.ca_file if own else None) or endpoints.mqtt_ca_file
    cert_file = own.cert_file if own else None
    key_file = own.key_file if own else None
    port = (own.port if own else None) or endpoints.mqtt_port
    if endpoints.stack_ca is not None and endpoints.mqtt_identity_port and not cert_file:
        cert, key = endpoints.stack_ca.client_files(gateway.username)
        if cert.is_file() and key.is_file():
            cert_file, key_file = str(cert), str(key)
            port = endpoints.mqtt_identity_port
    tls = endpoints.mqtt_tls or bool(ca_file or cert_file)
    return ClientTls(port, tls, ca_file, cert_file, key_file)


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
    mqtt_tls = parts.scheme == "mqtts"
    ca_file = services.mqtt.ca_file
    identity_port: int | None = None
    stack_ca: EmbeddedCa | None = None
    if services.mqtt.url == EMBEDDED and services.mqtt.tls == "embedded":
        stack_ca = EmbeddedCa.of_stack(data_dir / "stack")
        listeners = stack_ca.read_listeners()
        if listeners is None:
            raise EndpointError(
                f"services.mqtt.tls is embedded but the broker in {data_dir / 'stack'} runs"
                " without TLS: restart it (`citywatch stack down` then `citywatch stack up`)"
            )
        mqtt_tls, ca_file, identity_port = True, str(stack_ca.ca_cert), listeners.identity_port
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
        database_url = external_database_url(config, secrets_dir)
    return Endpoints(
        mqtt_host=parts.hostname,
        mqtt_port=parts.port or (8883 if mqtt_tls else 1883),
        kafka_bootstrap=bootstrap,
        kafka_idempotent=idempotent,
        database_url=database_url,
        secrets_dir=secrets_dir,
        mqtt_tls=mqtt_tls,
        mqtt_ca_file=ca_file,
        mqtt_identity_port=identity_port,
        stack_ca=stack_ca,
    )


def external_database_url(config: CitywatchConfig, secrets_dir: Path) -> str:
    """The configured database URL with its password and TLS settings as libpq takes them.

    ``sslmode``/``sslrootcert`` from the config are added to the conninfo; those written in
    the URL itself pass through unchanged.
    """
    database = config.services.database
    extra: dict[str, str] = {}
    if database.password:
        extra["password"] = resolve_secret(database.password, secrets_dir)
    if database.sslmode:
        extra["sslmode"] = database.sslmode
    if database.sslrootcert:
        extra["sslrootcert"] = database.sslrootcert
    if not extra:
        return database.url
    from psycopg.conninfo import make_conninfo  # only here: gateways lack psycopg

    return make_conninfo(database.url, **extra)
