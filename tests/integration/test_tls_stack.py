"""The embedded stack with ``services.mqtt.tls: embedded``: its own CA, Mosquitto with TLS
only, gateways by certificate, and a secret rotated while they run.

A stack of its own (not the session's shared one, which runs without TLS), started and
stopped by this module.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from citywatch.cli.main import app
from citywatch.config import CitywatchConfig, load_config
from citywatch.config.secrets import resolve_secret
from citywatch.contracts import Channel, TopicAddress
from citywatch.contracts.topics import UPLINK_CHANNELS, fleet_filter
from citywatch.edge.gateway_session import edge_session
from citywatch.mqtt_client import BrokerSettings, check_broker_certificate, make_client
from citywatch.stack.endpoints import Endpoints, embedded_stack, resolve_endpoints
from citywatch.stack.launcher import EmbeddedStack
from citywatch.stack.mosquitto import probe_mqtt
from citywatch.stack.ports import LOOPBACK
from citywatch.stack.service import ProbeFailed
from citywatch.stack.tls import EmbeddedCa
from citywatch.tls_client import CertificateRejected

pytestmark = [pytest.mark.integration, pytest.mark.service]

DEMO = Path(__file__).resolve().parents[2] / "configs" / "demo-district.yaml"
SENSORS_GW = "gw-sensors-east"
TLS_LINE = "  mqtt: {url: embedded, tls: embedded}\n"


@dataclass(frozen=True)
class TlsStack:
    config: CitywatchConfig
    config_path: Path
    data_dir: Path
    endpoints: Endpoints


@pytest.fixture(scope="module")
def tls_stack() -> Iterator[TlsStack]:
    """The demo site, with ``tls: embedded``, on an embedded stack of its own."""
    data_dir = Path(tempfile.mkdtemp(prefix="citywatch-tls-test-"))
    data_dir.chmod(0o711)  # the services run as their own users and must reach it
    site = data_dir / "site"
    shutil.copytree(DEMO.parent / "demo-district", site / "demo-district")
    text = DEMO.read_text()
    assert "  mqtt: {url: embedded}\n" in text
    config_path = site / DEMO.name
    config_path.write_text(text.replace("  mqtt: {url: embedded}\n", TLS_LINE))
    config = load_config(config_path)
    embedded_stack(config, data_dir).up(timeout_s=90)
    try:
        yield TlsStack(config, config_path, data_dir, resolve_endpoints(config, data_dir))
    finally:
        EmbeddedStack(data_dir / "stack").down()
        shutil.rmtree(data_dir, ignore_errors=True)


def fleet_listener(stack: TlsStack) -> tuple[object, list[str]]:
    """The bridge's account over TLS, subscribed to every uplink; returns client, topics."""
    mqtt = stack.config.services.mqtt
    settings = BrokerSettings(
        host=LOOPBACK, port=stack.endpoints.mqtt_port, username=mqtt.bridge.username,
        password=resolve_secret(mqtt.bridge.password, stack.endpoints.secrets_dir),
        tls=True, tls_ca_file=stack.endpoints.mqtt_ca_file,
    )  # fmt: skip
    topics: list[str] = []
    subscribed = threading.Event()
    client = make_client("tls-stack-listener", settings)
    client.on_connect = lambda c, *_: c.subscribe([(fleet_filter(ch), 1) for ch in UPLINK_CHANNELS])
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = lambda _c, _u, msg: topics.append(msg.topic)
    client.connect(LOOPBACK, stack.endpoints.mqtt_port)
    client.loop_start()
    assert subscribed.wait(10), "the bridge account could not subscribe over TLS"
    return client, topics


def test_embedded_stack_makes_its_ca_and_serves_mqtt_over_tls_only(tls_stack: TlsStack) -> None:
    """The stack's CA exists with owner-only keys; the broker refuses a plaintext client."""
    endpoints = tls_stack.endpoints
    ca = EmbeddedCa.of_stack(tls_stack.data_dir / "stack")
    assert endpoints.mqtt_tls and endpoints.mqtt_ca_file == str(ca.ca_cert)
    assert endpoints.mqtt_identity_port not in (None, endpoints.mqtt_port)
    for key in (ca.ca_key, ca.server_key, *ca.client_files(SENSORS_GW)[1:]):
        assert key.stat().st_mode & 0o777 == 0o600
    health = "citywatch-bridge"
    password = resolve_secret(tls_stack.config.services.mqtt.bridge.password, endpoints.secrets_dir)
    probe_mqtt(endpoints.mqtt_port, health, password, mqtt_v5=True, ca_file=endpoints.mqtt_ca_file)
    with pytest.raises(ProbeFailed):
        probe_mqtt(endpoints.mqtt_port, health, password, mqtt_v5=True)  # plaintext


def test_gateway_connects_over_tls_by_certificate_and_publishes(tls_stack: TlsStack) -> None:
    """The real edge session connects with its certificate; its status reaches the bridge."""
    client, topics = fleet_listener(tls_stack)
    session = edge_session(tls_stack.config, SENSORS_GW, tls_stack.data_dir)
    session.start()
    try:
        assert session.broker.port == tls_stack.endpoints.mqtt_identity_port
        assert session.broker.tls_cert_file and session.broker.tls_cert_file.endswith(
            f"{SENSORS_GW}.crt"
        )
        assert session.wait_connected(10)
        status = TopicAddress(tls_stack.config.site.id, "gateway", SENSORS_GW, Channel.STATUS)
        deadline = time.monotonic() + 10
        while status.topic not in topics and time.monotonic() < deadline:
            time.sleep(0.05)
        assert status.topic in topics
    finally:
        session.stop()
        client.disconnect()  # type: ignore[attr-defined]
        client.loop_stop()  # type: ignore[attr-defined]


def test_client_with_a_wrong_ca_is_refused_naming_the_certificate(
    tls_stack: TlsStack, tmp_path: Path
) -> None:
    """Trusting another CA, a client fails with the certificate problem and the CA file."""
    other = EmbeddedCa(tmp_path / "other")
    other.ensure()
    settings = BrokerSettings(
        host=LOOPBACK, port=tls_stack.endpoints.mqtt_port, username="x", password="y",
        tls_ca_file=str(other.ca_cert),
    )  # fmt: skip
    with pytest.raises(CertificateRejected) as err:
        check_broker_certificate(settings)
    assert f"TLS certificate of {LOOPBACK} rejected: self-signed certificate" in str(err.value)
    assert str(other.ca_cert) in str(err.value)


def test_rotate_secret_command_reloads_the_broker_and_keeps_certificate_gateways(
    tls_stack: TlsStack,
) -> None:
    """`citywatch broker rotate-secret`: the new secret logs in, the old one is refused, and
    a gateway connected by certificate is not disconnected."""
    secrets_dir = tls_stack.endpoints.secrets_dir
    gateway = next(g for g in tls_stack.config.devices.gateways if g.id == SENSORS_GW)
    old = resolve_secret(gateway.credentials.password, secrets_dir)
    session = edge_session(tls_stack.config, SENSORS_GW, tls_stack.data_dir)
    session.start()
    try:
        assert session.wait_connected(10)
        result = CliRunner().invoke(
            app, ["broker", "rotate-secret", "--gateway", SENSORS_GW, "-c", str(tls_stack.config_path),
                  "--data-dir", str(tls_stack.data_dir)],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "accepts" in result.output
        new = resolve_secret(gateway.credentials.password, secrets_dir)
        assert new != old
        ca_file = tls_stack.endpoints.mqtt_ca_file
        port = tls_stack.endpoints.mqtt_port
        probe_mqtt(port, gateway.username, new, mqtt_v5=True, ca_file=ca_file)
        with pytest.raises(ProbeFailed, match="refused"):
            probe_mqtt(port, gateway.username, old, mqtt_v5=True, ca_file=ca_file)
        time.sleep(1)
        assert session.connected and session.stats.connects == 1
    finally:
        session.stop()


def test_bridge_logs_in_over_tls_with_its_password(tls_stack: TlsStack) -> None:
    """The bridge's broker settings (from stream_settings) are TLS and the broker accepts them."""
    from citywatch.stream.bridge import Bridge
    from citywatch.stream.settings import stream_settings

    bridge = Bridge(stream_settings(tls_stack.config, tls_stack.data_dir))
    broker = bridge._broker
    assert broker.uses_tls and broker.tls_ca_file == tls_stack.endpoints.mqtt_ca_file
    check_broker_certificate(broker)
    accepted: list[bool] = []
    client = make_client("tls-stack-bridge-check", broker)
    client.on_connect = lambda _c, _u, _f, reason, _p: accepted.append(not reason.is_failure)
    client.connect(broker.host, broker.port)
    deadline = time.monotonic() + 10
    while not accepted and time.monotonic() < deadline:
        client.loop(0.1)
    client.disconnect()
    assert accepted == [True]
