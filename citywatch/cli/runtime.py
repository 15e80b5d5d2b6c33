"""Build the runtime objects of a process (sessions, settings) from config and endpoints."""

from __future__ import annotations

from pathlib import Path

from citywatch import __version__
from citywatch.cli.accounts import data_dir_of, resolve_endpoints
from citywatch.config import CitywatchConfig
from citywatch.config.secrets import resolve_secret
from citywatch.contracts import DeviceKind, DeviceRef
from citywatch.edge.outbox import Outbox
from citywatch.edge.session import EdgeSession
from citywatch.mqtt_client import BrokerSettings
from citywatch.stream.settings import StreamSettings


def edge_session(config: CitywatchConfig, gateway_id: str, data_dir: Path | None) -> EdgeSession:
    """The MQTT session of one gateway, with its outbox in the data directory."""
    gateways = {g.id: g for g in config.devices.gateways}
    if gateway_id not in gateways:
        raise SystemExit(f"unknown gateway {gateway_id!r}; configured: {sorted(gateways)}")
    gateway = gateways[gateway_id]
    root = data_dir_of(config, data_dir)
    endpoints = resolve_endpoints(config, root)
    outbox_path = (
        Path(gateway.outbox_path) if gateway.outbox_path else root / f"outbox-{gateway.id}.sqlite"
    )
    devices = [
        DeviceRef(site=config.site.id, kind=DeviceKind(kind), id=device_id)
        for kind, device_id in config.gateway_devices(gateway_id)
    ]
    tls = gateway.tls
    return EdgeSession(
        site=config.site.id,
        gateway_id=gateway.id,
        devices=devices,
        broker=BrokerSettings(
            host=endpoints.mqtt_host,
            port=endpoints.mqtt_port,
            username=gateway.username,
            password=resolve_secret(gateway.credentials.password, endpoints.secrets_dir),
            tls_ca_file=tls.ca_file if tls else None,
            tls_cert_file=tls.cert_file if tls else None,
            tls_key_file=tls.key_file if tls else None,
        ),
        outbox=Outbox(outbox_path, resend_after_s=gateway.resend_after.total_seconds()),
        software=f"citywatch {__version__}",
        alerts_in_flight=gateway.alerts_in_flight,
    )


def stream_settings(
    config: CitywatchConfig, data_dir: Path | None, bridge_id: str = "1"
) -> StreamSettings:
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
        share_group=mqtt.share_group,
        bridge_id=bridge_id,
    )
