"""The one way citywatch builds a paho MQTT client: MQTT 5, credentials, TLS, persistent session.

Edge sessions and the bridge both need the same things from the broker: MQTT 5 (so an ACL
refusal comes back as a reason code), capped reconnect backoff, and a session that survives
a reconnect (``clean_start=False`` with an expiry) so in-flight QoS 1 messages are not lost.

TLS: ``BrokerSettings.tls`` (an ``mqtts://`` URL) always means TLS, with the host name
checked, against the configured CA file or else the system CAs (:mod:`citywatch.tls_client`).
A certificate that fails verification is named in the error, with the CA file; the bridge
checks it once, synchronously, before it starts its background connection
(:func:`connect`), so a wrong CA stops it with that message instead of endless retries.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from citywatch.tls_client import client_context

log = logging.getLogger(__name__)

_CERTIFICATE_CHECK_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class BrokerSettings:
    """Where a client connects and as whom.

    ``tls`` is on for an ``mqtts://`` broker, and whenever a TLS file is given; with no
    ``tls_ca_file`` the broker is verified against the system CAs. ``password_source``,
    when given, is read again before every connection attempt, so a gateway whose secret
    was rotated reconnects with the new one without a restart.
    """

    host: str
    port: int
    username: str
    password: str
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    keepalive_s: int = 30
    reconnect_min_s: int = 1
    reconnect_max_s: int = 60
    session_expiry_s: int = 3600
    tls: bool = False
    password_source: Callable[[], str] | None = field(default=None, compare=False, repr=False)

    @property
    def uses_tls(self) -> bool:
        return self.tls or bool(self.tls_ca_file or self.tls_cert_file)

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.uses_tls else 'mqtt'}://{self.host}:{self.port}"

    def tls_context(self) -> ssl.SSLContext:
        """The verifying client context of this broker (raises TlsFilesError for bad files)."""
        return client_context(self.tls_ca_file, self.tls_cert_file, self.tls_key_file)


def make_client(client_id: str, broker: BrokerSettings, *, manual_ack: bool = False) -> mqtt.Client:
    """A paho client for ``broker``, not yet connected (set callbacks, then :func:`connect`)."""
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        manual_ack=manual_ack,
    )
    client.username_pw_set(broker.username, broker.password)
    if broker.uses_tls:
        client.tls_set_context(broker.tls_context())
    if broker.password_source is not None:
        client.on_pre_connect = _reread_password(broker.username, broker.password_source)
    client.reconnect_delay_set(broker.reconnect_min_s, broker.reconnect_max_s)
    return client


def _reread_password(
    username: str, source: Callable[[], str]
) -> Callable[[mqtt.Client, object], None]:
    """paho's pre-connect hook: log in with the secret as it is now (rotation takes effect)."""

    def before_connect(client: mqtt.Client, userdata: object) -> None:
        try:
            client.username_pw_set(username, source())
        except (OSError, LookupError) as exc:  # keep the last password; say why
            log.warning("cannot read the MQTT password of %s again: %s", username, exc)

    return before_connect


def check_broker_certificate(broker: BrokerSettings) -> None:
    """One TLS handshake with the broker, to fail fast on a certificate it cannot verify.

    Raises :class:`~citywatch.tls_client.CertificateRejected` (the certificate problem and
    the CA file in its message); a broker that cannot be reached now is only logged, since
    the background connection retries it.
    """
    context = broker.tls_context()
    try:
        with socket.create_connection(
            (broker.host, broker.port), timeout=_CERTIFICATE_CHECK_TIMEOUT_S
        ) as raw, context.wrap_socket(raw, server_hostname=broker.host):
            pass
    except ssl.SSLCertVerificationError as exc:
        log.error("cannot connect to %s: %s", broker.url, exc)
        raise
    except OSError as exc:
        log.warning("cannot check the TLS certificate of %s now (will retry): %s", broker.url, exc)


def connect(client: mqtt.Client, broker: BrokerSettings) -> None:
    """Connect in the background with a persistent session and start paho's network thread.

    With TLS, the broker's certificate is checked first (:func:`check_broker_certificate`):
    a certificate that does not verify raises instead of being retried forever.
    """
    if broker.uses_tls:
        check_broker_certificate(broker)
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = broker.session_expiry_s
    client.connect_async(
        broker.host, broker.port, broker.keepalive_s, clean_start=False, properties=properties
    )
    client.loop_start()


def refused(reason: object) -> bool:
    """True when a CONNACK reason code says the broker refused the connection."""
    return bool(getattr(reason, "is_failure", False))


def third_party_client(
    client_id: str, url: str, username: str | None, password: str | None
) -> tuple[mqtt.Client, str, int]:
    """A plain client for someone else's broker (a DJI dock's, a LoRaWAN network server's).

    Those brokers speak whatever MQTT version their vendor chose, so this stays on paho's
    default protocol; ``mqtts://`` turns TLS on with the system CAs. Returns the client, not
    yet connected, and the host and port to connect to.
    """
    parts = urlsplit(url)
    tls = parts.scheme == "mqtts"
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id)
    if username:
        client.username_pw_set(username, password)
    if tls:
        client.tls_set_context(client_context())
    client.reconnect_delay_set(1, 60)
    return client, parts.hostname or "localhost", parts.port or (8883 if tls else 1883)
