"""TLS on the MQTT link, against a real Mosquitto configured as the embedded stack's.

The broker is the stack's own :class:`MosquittoService` with the stack's private CA: a
password port and a certificate-identity port, both TLS, with the demo site's accounts
and ACL. Gateways are the real edge sessions, built by ``edge_session`` from the config.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from citywatch.config import CitywatchConfig
from citywatch.config.devices import TlsConfig
from citywatch.config.secrets import resolve_secret
from citywatch.config.services import MqttService
from citywatch.contracts import Channel, TopicAddress
from citywatch.contracts.topics import UPLINK_CHANNELS, fleet_filter
from citywatch.edge.gateway_session import edge_session
from citywatch.edge.session import EdgeSession
from citywatch.mqtt_client import BrokerSettings, check_broker_certificate, make_client
from citywatch.stack.accounts import health_account
from citywatch.stack.endpoints import ensure_secrets, mqtt_accounts, replace_secret
from citywatch.stack.mosquitto import MosquittoService
from citywatch.stack.ports import LOOPBACK, pick_free_port
from citywatch.stack.service import ProbeFailed
from citywatch.stack.tls import EmbeddedCa
from citywatch.tls_client import CertificateRejected

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
pytestmark = [
    pytest.mark.service,
    pytest.mark.skipif(not Path(MOSQUITTO).exists(), reason="needs the mosquitto binary"),
]

SENSORS_GW = "gw-sensors-east"
CAMERA_GW = "gw-cam-renmin"


@dataclass
class TlsBroker:
    data_dir: Path
    service: MosquittoService
    process: subprocess.Popen[bytes]
    port: int
    identity_port: int
    ca: EmbeddedCa

    def reload(self) -> None:
        os.kill(self.process.pid, signal.SIGHUP)


@pytest.fixture
def tls_broker(tmp_path: Path, demo_config: CitywatchConfig) -> Iterator[TlsBroker]:
    """Mosquitto with the stack's TLS listeners and the demo site's accounts."""
    stack_dir = tmp_path / "stack"
    stack_dir.mkdir()
    ca = EmbeddedCa.of_stack(stack_dir)
    ca.ensure([g.username for g in demo_config.devices.gateways])
    secrets_dir = tmp_path / "secrets"
    ensure_secrets(demo_config, secrets_dir)
    service = MosquittoService(stack_dir, Path(MOSQUITTO), None, "health-pw")
    service.write_accounts(
        [health_account("health-pw"), *mqtt_accounts(demo_config, secrets_dir)]
    )
    port = pick_free_port()
    service.prepare(port)
    listeners = ca.read_listeners()
    assert listeners is not None
    process = subprocess.Popen(
        service.argv(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            service.probe(port)
            break
        except ProbeFailed:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise
            time.sleep(0.1)
    yield TlsBroker(tmp_path, service, process, port, listeners.identity_port, ca)
    process.terminate()
    process.wait(10)


def tls_config(
    config: CitywatchConfig, broker: TlsBroker, *, ca_file: str | None, cert_gateway: str = ""
) -> CitywatchConfig:
    """The demo site pointed at ``broker`` by URL (mqtts://), as an external broker."""
    services = config.services.model_copy(
        update={
            "mqtt": MqttService(url=f"mqtts://{LOOPBACK}:{broker.port}", ca_file=ca_file),
            "kafka": config.services.kafka.model_copy(update={"bootstrap": "127.0.0.1:9"}),
            "database": config.services.database.model_copy(
                update={"url": "postgresql://unused@127.0.0.1:9/unused"}
            ),
        }
    )
    gateways = []
    for gateway in config.devices.gateways:
        if gateway.id == cert_gateway:
            cert, key = broker.ca.client_files(gateway.username)
            tls = TlsConfig(cert_file=str(cert), key_file=str(key), port=broker.identity_port)
            gateway = gateway.model_copy(update={"tls": tls})
        gateways.append(gateway)
    devices = config.devices.model_copy(update={"gateways": tuple(gateways)})
    return config.model_copy(update={"services": services, "devices": devices})


class Listener:
    """A fleet-wide subscriber (the bridge's account) that records what the broker delivers."""

    def __init__(self, config: CitywatchConfig, broker: TlsBroker) -> None:
        mqtt_cfg = config.services.mqtt
        self.messages: list[str] = []
        self.ready = threading.Event()
        settings = BrokerSettings(
            host=LOOPBACK,
            port=broker.port,
            username=mqtt_cfg.bridge.username,
            password=resolve_secret(mqtt_cfg.bridge.password, broker.data_dir / "secrets"),
            tls_ca_file=str(broker.ca.ca_cert),
        )
        self.client = make_client("tls-test-listener", settings)
        filters = [(fleet_filter(channel), 1) for channel in UPLINK_CHANNELS]
        self.client.on_connect = lambda c, *_: c.subscribe(filters)
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = lambda _c, _u, msg: self.messages.append(msg.topic)
        self.client.connect(LOOPBACK, broker.port)
        self.client.loop_start()
        assert self.ready.wait(10), "the listener could not subscribe"

    def wait_for(self, topic: str, timeout_s: float = 10) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if topic in self.messages:
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def started(config: CitywatchConfig, gateway_id: str, data_dir: Path) -> EdgeSession:
    session = edge_session(config, gateway_id, data_dir)
    session.start()
    return session


def test_gateway_connects_over_tls_with_its_certificate_and_publishes(
    tls_broker: TlsBroker, demo_config: CitywatchConfig
) -> None:
    """A gateway's edge session with a client certificate connects over TLS; its messages arrive."""
    config = tls_config(
        demo_config, tls_broker, ca_file=str(tls_broker.ca.ca_cert), cert_gateway=SENSORS_GW
    )
    listener = Listener(config, tls_broker)
    session = started(config, SENSORS_GW, tls_broker.data_dir)
    try:
        assert session.broker.uses_tls and session.broker.port == tls_broker.identity_port
        assert session.wait_connected(10), "the gateway did not connect over TLS"
        status = TopicAddress(config.site.id, "gateway", SENSORS_GW, Channel.STATUS).topic
        assert listener.wait_for(status), "the gateway's status did not arrive"
    finally:
        session.stop()
        listener.close()


def test_certificate_cn_is_the_identity_and_its_acl_applies(
    tls_broker: TlsBroker, demo_config: CitywatchConfig
) -> None:
    """On the identity port the CN is the username: gateway A cannot publish as gateway B."""
    config = tls_config(demo_config, tls_broker, ca_file=str(tls_broker.ca.ca_cert))
    listener = Listener(config, tls_broker)
    cert, key = tls_broker.ca.client_files(SENSORS_GW)
    settings = BrokerSettings(
        host=LOOPBACK,
        port=tls_broker.identity_port,
        username=CAMERA_GW,  # claimed; the broker takes the certificate's CN instead
        password="not-used",
        tls_ca_file=str(tls_broker.ca.ca_cert),
        tls_cert_file=str(cert),
        tls_key_file=str(key),
    )
    client = make_client("tls-test-forger", settings)
    connected = threading.Event()
    client.on_connect = lambda *_: connected.set()
    client.connect(LOOPBACK, tls_broker.identity_port)
    client.loop_start()
    try:
        assert connected.wait(10)
        site = config.site.id
        camera = next(d for k, d in config.gateway_devices(CAMERA_GW) if k == "camera")
        sensor = next(d for k, d in config.gateway_devices(SENSORS_GW) if k == "sensor")
        forged = TopicAddress(site, "camera", camera, Channel.TELEMETRY).topic
        own = TopicAddress(site, "sensor", sensor, Channel.TELEMETRY).topic
        client.publish(forged, b"{}", qos=1).wait_for_publish(5)
        client.publish(own, b"{}", qos=1).wait_for_publish(5)
        assert listener.wait_for(own), "the gateway's own topic was refused"
        assert forged not in listener.messages
    finally:
        client.disconnect()
        client.loop_stop()
        listener.close()


def test_identity_port_refuses_a_client_without_a_certificate(tls_broker: TlsBroker) -> None:
    """A password alone does not open the certificate-identity listener."""
    settings = BrokerSettings(
        host=LOOPBACK, port=tls_broker.identity_port, username="citywatch-health",
        password="health-pw", tls_ca_file=str(tls_broker.ca.ca_cert),
    )  # fmt: skip
    client = make_client("tls-test-nocert", settings)
    accepted: list[bool] = []
    client.on_connect = lambda _c, _u, _f, reason, _p: accepted.append(not reason.is_failure)
    try:
        client.connect(LOOPBACK, tls_broker.identity_port)
        for _ in range(20):
            if client.loop(0.1) != 0:
                break  # the broker closed the connection
    except OSError:
        pass  # (TLS 1.2) the handshake itself failed
    assert True not in accepted


def test_wrong_ca_is_refused_with_an_error_naming_the_certificate_and_ca_file(
    tls_broker: TlsBroker, tmp_path: Path
) -> None:
    """A client trusting another CA fails with the certificate problem and that CA file."""
    other = EmbeddedCa(tmp_path / "other-ca")
    other.ensure()
    settings = BrokerSettings(
        host=LOOPBACK, port=tls_broker.port, username="x", password="y",
        tls_ca_file=str(other.ca_cert),
    )  # fmt: skip
    with pytest.raises(CertificateRejected) as refused:
        check_broker_certificate(settings)
    message = str(refused.value)
    assert refused.value.verify_message and refused.value.verify_message in message
    assert "certificate" in refused.value.verify_message
    assert str(other.ca_cert) in message
    assert f"TLS certificate of {LOOPBACK} rejected" in message


def test_gateway_with_a_wrong_ca_logs_the_certificate_problem(
    tls_broker: TlsBroker,
    demo_config: CitywatchConfig,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The edge session never connects, and its log names the rejected certificate and CA."""
    other = EmbeddedCa(tmp_path / "other-ca")
    other.ensure()
    config = tls_config(demo_config, tls_broker, ca_file=str(other.ca_cert))
    with caplog.at_level(logging.ERROR, logger="citywatch.edge.session"):
        session = started(config, SENSORS_GW, tls_broker.data_dir)
        try:
            assert not session.wait_connected(2)
        finally:
            session.stop()
    assert session.stats.connect_failures >= 1
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert f"TLS certificate of {LOOPBACK} rejected: self-signed certificate" in logged
    assert str(other.ca_cert) in logged


def test_mqtts_url_without_a_tls_block_uses_tls_with_the_system_cas(
    tmp_path: Path, demo_config: CitywatchConfig
) -> None:
    """``mqtts://`` alone means TLS: the session verifies against the system CAs and does not
    fall back to plaintext on a plain listener."""
    port = pick_free_port()
    conf = tmp_path / "plain.conf"
    conf.write_text(f"listener {port} {LOOPBACK}\nallow_anonymous true\n")
    process = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stderr=subprocess.DEVNULL)
    try:
        services = demo_config.services.model_copy(
            update={
                "mqtt": MqttService(url=f"mqtts://{LOOPBACK}:{port}"),
                "kafka": demo_config.services.kafka.model_copy(update={"bootstrap": "127.0.0.1:9"}),
                "database": demo_config.services.database.model_copy(
                    update={"url": "postgresql://unused@127.0.0.1:9/unused"}
                ),
            }
        )
        config = demo_config.model_copy(update={"services": services})
        ensure_secrets(config, tmp_path / "secrets")
        session = started(config, SENSORS_GW, tmp_path)
        try:
            assert session.broker.uses_tls and session.broker.tls_ca_file is None
            context = session.broker.tls_context()
            assert context.check_hostname and context.get_ca_certs() is not None
            assert not session.wait_connected(2), "connected in plaintext to an mqtts:// URL"
            assert session.stats.connect_failures >= 1
        finally:
            session.stop()
    finally:
        process.terminate()
        process.wait(10)


def test_rotated_secret_reconnects_password_gateway_and_certificate_gateway_stays(
    tls_broker: TlsBroker, demo_config: CitywatchConfig
) -> None:
    """After a secret rotation and a broker reload, the password gateway is back within
    seconds with the new secret, the old secret is refused, and a gateway logged in by
    certificate is not disconnected at all."""
    config = tls_config(
        demo_config, tls_broker, ca_file=str(tls_broker.ca.ca_cert), cert_gateway=CAMERA_GW
    )
    secrets_dir = tls_broker.data_dir / "secrets"
    by_password = started(config, SENSORS_GW, tls_broker.data_dir)
    by_certificate = started(config, CAMERA_GW, tls_broker.data_dir)
    try:
        assert by_password.wait_connected(10) and by_certificate.wait_connected(10)
        gateway = next(g for g in config.devices.gateways if g.id == SENSORS_GW)
        old_secret = resolve_secret(gateway.credentials.password, secrets_dir)
        replace_secret(gateway.credentials.password, secrets_dir)
        tls_broker.service.write_accounts(
            [health_account("health-pw"), *mqtt_accounts(config, secrets_dir)]
        )
        tls_broker.reload()
        deadline = time.monotonic() + 15
        while by_password.stats.connects < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert by_password.stats.connects == 2, "the gateway did not log in with the new secret"
        assert by_password.connected
        assert by_certificate.stats.connects == 1 and by_certificate.connected
        stale = BrokerSettings(
            host=LOOPBACK, port=tls_broker.port, username=gateway.username, password=old_secret,
            tls_ca_file=str(tls_broker.ca.ca_cert),
        )  # fmt: skip
        outcome: list[object] = []
        client = make_client("tls-test-stale", stale)
        client.on_connect = lambda _c, _u, _f, reason, _p: outcome.append(reason)
        client.connect(LOOPBACK, tls_broker.port)
        deadline = time.monotonic() + 5
        while not outcome and time.monotonic() < deadline:
            client.loop(0.1)
        client.disconnect()
        assert outcome and getattr(outcome[0], "is_failure", False), "old secret still works"
    finally:
        by_password.stop()
        by_certificate.stop()


def test_embedded_broker_config_has_password_and_identity_tls_listeners(
    tls_broker: TlsBroker,
) -> None:
    """The embedded Mosquitto's TLS: both listeners TLS, the second by certificate CN."""
    conf = tls_broker.service.conf_path.read_text()
    identity = conf.split(f"listener {tls_broker.identity_port} ")[1]
    assert "require_certificate true" in identity and "use_identity_as_username true" in identity
    password = conf.split(f"listener {tls_broker.port} ")[1].split("listener ")[0]
    assert "require_certificate false" in password and "certfile" in password
    for key in (tls_broker.ca.ca_key, tls_broker.ca.server_key, tls_broker.service.tls_files["keyfile"]):
        assert key.stat().st_mode & 0o777 == 0o600


def test_paho_client_of_a_tls_broker_has_a_verifying_context() -> None:
    """make_client turns TLS on for tls=True with no files (system CAs), hostname checked."""
    settings = BrokerSettings(host="broker.example", port=8883, username="u", password="p", tls=True)
    client = make_client("ctx", settings)
    context = client._ssl_context  # paho keeps the context it was given
    assert context is not None and context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED
