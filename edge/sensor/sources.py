"""Where a sensor gateway's readings come from: Modbus buses polled in threads, LoRaWAN uplinks.

I/O shells around the hardware adapters. A Modbus bus (one TCP endpoint or one serial line)
is polled by its own thread, so a unit that times out delays only its bus; a LoRaWAN network
server's uplinks arrive on its MQTT integration. Both put ``(sensor id, WaterReading)`` into
the agent's inbox; every failure is counted under a name (``modbus.ModbusReadError``,
``lorawan.MalformedUplink``, ...) and logged with the sensor or device, never raised.
Simulated sensors need no shell: the agent samples them itself.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt

from citywatch.config.secrets import resolve_secret
from citywatch.config.sensor import (
    LorawanTransport,
    ModbusRtuTransport,
    ModbusTcpTransport,
    NetworkServer,
    SensorConfig,
)
from citywatch.hardware.water.lorawan import UplinkError, parse_uplink, readings_from_uplink
from citywatch.hardware.water.modbus import ModbusReadError, ModbusWaterSensor, make_client
from citywatch.hardware.water.reading import WaterReading
from citywatch.mqtt_client import third_party_client

__all__ = [
    "Counts",
    "Inbox",
    "LorawanListener",
    "ModbusPoller",
    "UplinkRouter",
    "open_sources",
]

log = logging.getLogger(__name__)

Inbox = queue.SimpleQueue[tuple[str, WaterReading]]


@dataclass
class Counts:
    """Named counters shared by the source threads (thread-safe)."""

    _counter: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counter[name] += n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counter)

    def __getitem__(self, name: str) -> int:
        with self._lock:
            return self._counter[name]


class ModbusPoller:
    """Polls every unit of one Modbus bus at its sample interval, in its own thread."""

    def __init__(
        self,
        name: str,
        units: list[tuple[SensorConfig, ModbusWaterSensor]],
        inbox: Inbox,
        counts: Counts,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.units = units
        self._inbox = inbox
        self._counts = counts
        self._clock = clock
        self._stop = threading.Event()
        self._failing: set[str] = set()
        self._thread = threading.Thread(target=self._run, name=f"modbus-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.units[0][1].client.close()

    def _run(self) -> None:
        started = self._clock()
        due = [started + i * 0.01 for i in range(len(self.units))]
        while not self._stop.is_set():
            now = self._clock()
            for i, (config, unit) in enumerate(self.units):
                if now < due[i]:
                    continue
                interval = config.sample_interval.total_seconds()
                due[i] = max(due[i] + interval, now)
                self.poll(config, unit)
            self._stop.wait(max(0.0, min(due) - self._clock()))

    def poll(self, config: SensorConfig, unit: ModbusWaterSensor) -> None:
        """One read of one unit; a failure is counted and logged once until it recovers."""
        try:
            reading = unit.read(datetime.now(UTC))
        except ModbusReadError as exc:
            self._counts.add(f"modbus.{type(exc).__name__}")
            if config.id not in self._failing:
                self._failing.add(config.id)
                log.warning("sensor %s: %s", config.id, exc, extra={"device": config.id})
            return
        if config.id in self._failing:
            self._failing.discard(config.id)
            log.info("sensor %s answers again", config.id, extra={"device": config.id})
        self._counts.add("modbus.readings")
        self._inbox.put((config.id, reading))


@dataclass(frozen=True)
class UplinkRouter:
    """Decodes one uplink message and routes its readings to the sensor with that DevEUI."""

    sensors: Mapping[str, tuple[str, str]]
    """DevEUI (lower-case hex) → (sensor id, codec name)."""
    inbox: Inbox
    counts: Counts

    def handle(self, topic: str, payload: bytes, received_at: datetime) -> int:
        """Route one message; return how many readings it gave (errors are counted)."""
        try:
            uplink = parse_uplink(payload, topic)
        except UplinkError as exc:
            self.counts.add(f"lorawan.{type(exc).__name__}")
            log.warning("ignoring a message on %s: %s", topic, exc)
            return 0
        target = self.sensors.get(uplink.dev_eui)
        if target is None:
            self.counts.add("lorawan.unknown_device")
            log.debug("uplink from %s, which is no sensor of this gateway", uplink.dev_eui)
            return 0
        sensor_id, codec = target
        try:
            readings = readings_from_uplink(uplink, codec, received_at)
        except UplinkError as exc:
            self.counts.add(f"lorawan.{type(exc).__name__}")
            log.warning("sensor %s: %s", sensor_id, exc, extra={"device": sensor_id})
            return 0
        for reading in readings:
            self.inbox.put((sensor_id, reading))
        self.counts.add("lorawan.readings", len(readings))
        return len(readings)


class LorawanListener:
    """Subscribes to a network server's uplink topic and feeds an :class:`UplinkRouter`."""

    def __init__(
        self, server: NetworkServer, password: str | None, router: UplinkRouter, client_id: str
    ) -> None:
        self.server = server
        self.router = router
        self._client, self._host, self._port = third_party_client(
            client_id, server.url, server.username, password
        )
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message

    def start(self) -> None:
        self._client.connect_async(self._host, self._port, keepalive=30)
        self._client.loop_start()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        if getattr(reason, "is_failure", False):
            log.error("network server %s refused the connection: %s", self.server.url, reason)
            return
        client.subscribe(self.server.topic, qos=1)
        log.info("listening for LoRaWAN uplinks on %s %s", self.server.url, self.server.topic)

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        self.router.handle(message.topic, bytes(message.payload), datetime.now(UTC))


Closable = ModbusPoller | LorawanListener


def open_sources(
    sensors: list[SensorConfig],
    inbox: Inbox,
    counts: Counts,
    secrets_dir: Path | None,
    client_prefix: str = "citywatch-lorawan",
) -> list[Closable]:
    """Start the shells the non-simulated sensors need; the caller closes them."""
    buses: dict[
        tuple[object, ...], list[tuple[SensorConfig, ModbusTcpTransport | ModbusRtuTransport]]
    ] = {}
    servers: dict[NetworkServer, dict[str, tuple[str, str]]] = {}
    for sensor in sensors:
        transport = sensor.transport
        if isinstance(transport, ModbusTcpTransport):
            buses.setdefault(("tcp", transport.host, transport.port, transport.framer), []).append(
                (sensor, transport)
            )
        elif isinstance(transport, ModbusRtuTransport):
            buses.setdefault(("rtu", transport.port), []).append((sensor, transport))
        elif isinstance(transport, LorawanTransport):
            servers.setdefault(transport.network_server, {})[transport.dev_eui.lower()] = (
                sensor.id,
                transport.codec,
            )
    opened: list[Closable] = []
    try:
        for key, members in buses.items():
            client = make_client(members[0][1])
            units = [
                (s, ModbusWaterSensor(client, t.unit_id, t.register_map, name=s.id))
                for s, t in members
            ]
            poller = ModbusPoller(":".join(str(k) for k in key), units, inbox, counts)
            poller.start()
            opened.append(poller)
        for index, (server, devices) in enumerate(servers.items()):
            password = resolve_secret(server.password, secrets_dir) if server.password else None
            listener = LorawanListener(
                server, password, UplinkRouter(devices, inbox, counts), f"{client_prefix}-{index}"
            )
            listener.start()
            opened.append(listener)
    except BaseException:
        for source in opened:
            source.close()
        raise
    return opened
