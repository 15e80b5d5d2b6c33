"""A real dock's link: the DJI Cloud API topics on the broker the dock is bound to (paho).

Subscribes to ``thing/product/+/{osd,state,events,requests}`` (the aircraft publishes
under its own sn, so the dock's messages are picked by the envelope's ``gateway``, which
the agent checks) and ``sys/product/{dock sn}/status``; replies go out at QoS 1.
"""

from __future__ import annotations

import logging
import queue
from datetime import UTC, datetime

import paho.mqtt.client as mqtt

from citywatch.config.dock import DockConfig, MqttDockLink
from citywatch.mqtt_client import third_party_client

__all__ = ["MqttLink"]

log = logging.getLogger(__name__)


class MqttLink:
    def __init__(self, dock: DockConfig, link: MqttDockLink, password: str | None) -> None:
        self.dock = dock
        self.link = link
        self._inbox: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()
        self._client, self._host, self._port = third_party_client(
            f"citywatch-dock-{dock.id}", link.url, link.username, password
        )
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message

    def start(self) -> None:
        self._client.connect_async(self._host, self._port, keepalive=30)
        self._client.loop_start()

    def topics(self) -> list[str]:
        things = [f"thing/product/+/{c}" for c in ("osd", "state", "events", "requests")]
        return [*things, f"sys/product/{self.dock.serial}/status"]

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        if getattr(reason, "is_failure", False):
            log.error("dock broker %s refused the connection: %s", self.link.url, reason)
            return
        for topic in self.topics():
            client.subscribe(topic, qos=1)
        log.info("listening to dock %s on %s", self.dock.serial, self.link.url)

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        self._inbox.put((message.topic, bytes(message.payload)))

    def poll(self, timeout_s: float) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        try:
            out.append(self._inbox.get(timeout=timeout_s))
            while True:
                out.append(self._inbox.get_nowait())
        except queue.Empty:
            pass
        return out

    def publish(self, topic: str, payload: bytes) -> None:
        self._client.publish(topic, payload, qos=1)

    def now(self) -> datetime:
        return datetime.now(UTC)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
