"""The MQTT session of one gateway, built from the site config and the resolved endpoints.

Every agent's entry point (the CLI, the demo, the tests) builds its session here, so the
broker account, TLS files, outbox path and device list come from one place.
"""

from __future__ import annotations

from pathlib import Path

from citywatch import __version__
from citywatch.config import CitywatchConfig
from citywatch.config.secrets import resolve_secret
from citywatch.contracts import DeviceKind, DeviceRef
from citywatch.edge.outbox import Outbox
from citywatch.edge.session import EdgeSession
from citywatch.mqtt_client import BrokerSettings
from citywatch.stack.endpoints import data_dir_of, resolve_endpoints

__all__ = ["edge_session"]


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
