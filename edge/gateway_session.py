"""The MQTT session of one gateway, built from the site config and the resolved endpoints.

Every agent's entry point (the CLI, the demo, the tests) builds its session here, so the
broker account, TLS files, outbox path and device list come from one place.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from citywatch import __version__
from citywatch.config import CitywatchConfig
from citywatch.config.devices import Gateway
from citywatch.config.secrets import resolve_secret
from citywatch.contracts import DeviceKind, DeviceRef
from citywatch.edge.evidence_upload_worker import evidence_uploader
from citywatch.edge.outbox import Outbox
from citywatch.edge.session import EdgeSession
from citywatch.mqtt_client import BrokerSettings
from citywatch.stack.endpoints import data_dir_of, gateway_tls, resolve_endpoints

__all__ = ["edge_session", "gateway_config", "outbox_path"]


def gateway_config(config: CitywatchConfig, gateway_id: str) -> Gateway:
    """The gateway's section of the device registry, or exit naming the configured ones."""
    gateways = {g.id: g for g in config.devices.gateways}
    if gateway_id not in gateways:
        raise SystemExit(f"unknown gateway {gateway_id!r}; configured: {sorted(gateways)}")
    return gateways[gateway_id]


def outbox_path(config: CitywatchConfig, gateway_id: str, data_dir: Path | None) -> Path:
    """Where the gateway's outbox (and its quarantine) lives: its ``outbox_path``, else
    ``<data dir>/outbox-<id>.sqlite``."""
    gateway = gateway_config(config, gateway_id)
    if gateway.outbox_path:
        return Path(gateway.outbox_path)
    return data_dir_of(config, data_dir) / f"outbox-{gateway.id}.sqlite"


def edge_session(config: CitywatchConfig, gateway_id: str, data_dir: Path | None) -> EdgeSession:
    """The MQTT session of one gateway, with its outbox in the data directory."""
    gateway = gateway_config(config, gateway_id)
    endpoints = resolve_endpoints(config, data_dir_of(config, data_dir))
    devices = [
        DeviceRef(site=config.site.id, kind=DeviceKind(kind), id=device_id)
        for kind, device_id in config.gateway_devices(gateway_id)
    ]
    tls = gateway_tls(gateway, endpoints)
    password = partial(resolve_secret, gateway.credentials.password, endpoints.secrets_dir)
    return EdgeSession(
        site=config.site.id,
        gateway_id=gateway.id,
        devices=devices,
        broker=BrokerSettings(
            host=endpoints.mqtt_host,
            port=tls.port,
            username=gateway.username,
            password=password(),
            tls_ca_file=tls.ca_file,
            tls_cert_file=tls.cert_file,
            tls_key_file=tls.key_file,
            tls=tls.tls,
            password_source=password,  # read again at each connect: a rotated secret applies
        ),
        outbox=Outbox(
            outbox_path(config, gateway_id, data_dir),
            resend_after_s=gateway.resend_after.total_seconds(),
            memory_items=gateway.outbox_memory_items,
        ),
        software=f"citywatch {__version__}",
        alerts_in_flight=gateway.alerts_in_flight,
        evidence_uploader=evidence_uploader(
            gateway, endpoints.secrets_dir, data_dir_of(config, data_dir)
        ),
    )
