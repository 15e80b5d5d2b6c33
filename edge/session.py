"""The MQTT session every edge agent shares: auth, TLS, last will, birth, receipts, outbox.

A broker's PUBACK is not proof of delivery (Mosquitto persists periodically, paho keeps its
session in memory, the embedded Kafka keeps nothing on restart): an alert stays in the
on-disk outbox until the stream's receipt, sent after the database commit, comes back.
The session is an I/O shell; what to publish is decided by the agents' pure cores.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import paho.mqtt.client as mqtt

from citywatch.contracts import (
    Alert,
    Channel,
    ContractError,
    DeviceKind,
    DeviceRef,
    Receipt,
    Status,
    Telemetry,
    decode,
    encode,
)
from citywatch.contracts.messages import DeviceState
from citywatch.edge.outbox import Outbox
from citywatch.mqtt_client import BrokerSettings, connect, make_client, refused

log = logging.getLogger(__name__)


class EdgeSession:
    """One gateway's MQTT connection, publishing through a durable outbox."""

    def __init__(
        self,
        *,
        site: str,
        gateway_id: str,
        devices: Sequence[DeviceRef],
        broker: BrokerSettings,
        outbox: Outbox,
        software: str,
        on_receipt: Callable[[Receipt], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.gateway = DeviceRef(site=site, kind=DeviceKind.GATEWAY, id=gateway_id)
        self.devices = tuple(devices)
        self.broker = broker
        self.outbox = outbox
        self.software = software
        self._on_receipt = on_receipt
        self._clock = clock
        self._connected = threading.Event()
        self._stopping = False
        self._pump_lock = threading.Lock()
        self.receipts = 0
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        client = make_client(f"citywatch-edge-{self.gateway.id}", self.broker)
        client.will_set(
            self._status_topic(),
            encode(self._status(DeviceState.OFFLINE, "connection lost")),
            qos=1,
            retain=True,
        )
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_message = self._handle_message
        return client

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background; publishing works offline (into the outbox) meanwhile."""
        connect(self._client, self.broker)

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def stop(self) -> None:
        """Say offline (retained) and disconnect; pending alerts stay in the outbox."""
        self._stopping = True
        if self._connected.is_set():
            info = self._client.publish(
                self._status_topic(),
                encode(self._status(DeviceState.OFFLINE, "stopped")),
                qos=1,
                retain=True,
            )
            info.wait_for_publish(timeout=5)
        self._client.disconnect()
        self._client.loop_stop()

    # -- publishing --------------------------------------------------------------------------
    def publish_alert(self, alert: Alert) -> None:
        self._enqueue(
            alert.id,
            alert.device.address(Channel.ALERTS).topic,
            encode(alert),
            1,
            "alert",
            alert.device.id,
        )

    def publish_telemetry(self, telemetry: Telemetry) -> None:
        self._enqueue(
            telemetry.id,
            telemetry.device.address(Channel.TELEMETRY).topic,
            encode(telemetry),
            0,
            "telemetry",
            telemetry.device.id,
        )

    def _enqueue(
        self, message_id: str, topic: str, payload: bytes, qos: int, kind: str, device_id: str
    ) -> None:
        self.outbox.put(message_id, topic, payload, qos, kind, device_id, self._clock())
        self.pump()

    def pump(self) -> int:
        """Send what is due from the outbox (new items, and alerts whose receipt is overdue)."""
        if not self._connected.is_set():
            return 0
        sent = 0
        with self._pump_lock:
            for item in self.outbox.due(self._clock()):
                info = self._client.publish(item.topic, item.payload, qos=item.qos)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    log.warning(
                        "publish failed (rc=%s); will retry",
                        info.rc,
                        extra={"message_id": item.message_id},
                    )
                    break
                self.outbox.mark_sent(item.message_id, self._clock())
                if item.qos == 0:
                    self.outbox.drop_unconfirmable(item.message_id)
                sent += 1
        return sent

    # -- callbacks (paho's network thread) ----------------------------------------------------
    def _handle_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: object,
        reason: object,
        properties: object,
    ) -> None:
        if refused(reason):
            log.error("broker refused the connection: %s (check the gateway's credentials)", reason)
            return
        client.publish(
            self._status_topic(), encode(self._status(DeviceState.ONLINE, None)), qos=1, retain=True
        )
        for device in self.devices:
            client.subscribe(device.address(Channel.RECEIPTS).topic, qos=1)
        self._connected.set()
        log.info(
            "connected to mqtt://%s:%s as %s",
            self.broker.host,
            self.broker.port,
            self.broker.username,
        )
        threading.Thread(target=self.pump, name="outbox-pump", daemon=True).start()

    def _handle_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: object,
        reason: object,
        properties: object,
    ) -> None:
        self._connected.clear()
        if not self._stopping:
            log.warning("disconnected from the broker (%s); reconnecting with backoff", reason)

    def _handle_message(
        self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage
    ) -> None:
        try:
            receipt = decode(bytes(message.payload), Receipt)
        except ContractError as exc:
            log.error("ignoring an unreadable receipt on %s: %s", message.topic, exc)
            return
        if self.outbox.acknowledge(receipt.message_id):
            self.receipts += 1
        if self._on_receipt is not None:
            self._on_receipt(receipt)

    # -- status ------------------------------------------------------------------------------
    def _status_topic(self) -> str:
        return self.gateway.address(Channel.STATUS).topic

    def _status(self, state: DeviceState, detail: str | None) -> Status:
        return Status(
            device=self.gateway,
            state=state,
            event_time=datetime.now(UTC),
            software=self.software,
            detail=detail,
        )
