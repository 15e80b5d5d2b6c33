"""The one way citywatch builds a paho MQTT client: MQTT 5, credentials, TLS, persistent session.

Edge sessions and the bridge both need the same things from the broker: MQTT 5 (so an ACL
refusal comes back as a reason code), capped reconnect backoff, and a session that survives
a reconnect (``clean_start=False`` with an expiry) so in-flight QoS 1 messages are not lost.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


@dataclass(frozen=True)
class BrokerSettings:
    """Where a client connects and as whom."""

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


def make_client(client_id: str, broker: BrokerSettings, *, manual_ack: bool = False) -> mqtt.Client:
    """A paho client for ``broker``, not yet connected (set callbacks, then :func:`connect`)."""
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        manual_ack=manual_ack,
    )
    client.username_pw_set(broker.username, broker.password)
    if broker.tls_ca_file or broker.tls_cert_file:
        client.tls_set(
            ca_certs=broker.tls_ca_file,
            certfile=broker.tls_cert_file,
            keyfile=broker.tls_key_file,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    client.reconnect_delay_set(broker.reconnect_min_s, broker.reconnect_max_s)
    return client


def connect(client: mqtt.Client, broker: BrokerSettings) -> None:
    """Connect in the background with a persistent session and start paho's network thread."""
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
        client.tls_set()
    client.reconnect_delay_set(1, 60)
    return client, parts.hostname or "localhost", parts.port or (8883 if tls else 1883)
