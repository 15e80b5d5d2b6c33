"""``citywatch sim sensor``: run the water-level simulator alone, as real hardware would appear.

The simulated sensors (a rain event's hydrograph, noise, and injected faults) are served as
a Modbus TCP server (one unit id per sensor, each with its register map) and/or published
as ChirpStack v4 or v3 uplinks (Milesight EM500-UDL payloads) to an MQTT broker, so a
sensor gateway can be pointed at them exactly as at real units.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.table import Table

from citywatch.cli.dock_cmds import sim_dock
from citywatch.cli.options import load_config_or_exit
from citywatch.config.base import parse_duration
from citywatch.config.sensor import (
    LorawanTransport,
    ModbusTcpTransport,
    RegisterMap,
    SensorConfig,
    SimulatedFault,
    SimulatedRain,
)
from citywatch.config.site import Placement

if TYPE_CHECKING:
    from citywatch.hardware.water.sim import SimulatedWaterSensor

console = Console()
sim_app = typer.Typer(
    help="Run a device simulator alone (Modbus TCP server, ChirpStack uplinks, DJI dock).",
    no_args_is_help=True,
)

FaultOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--fault",
        help="Inject a fault into every sensor: TYPE@START[+DURATION], e.g. stuck@2m+5m,"
        " spikes@30s, dropout@1m+2m, battery_low@0s, no_echo@90s+30s. Repeatable.",
    ),
]


def parse_fault(text: str) -> SimulatedFault:
    """``TYPE@START[+DURATION]`` → a :class:`SimulatedFault`; a BadParameter says what is wrong."""
    try:
        kind, _, when = text.partition("@")
        start, _, duration = when.partition("+")
        return SimulatedFault(
            type=kind,
            start_after=parse_duration(start or "0s"),
            duration=parse_duration(duration) if duration else None,
        )
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r}: {exc}") from None


def synthetic_sensors(count: int, sample_interval: str) -> list[SensorConfig]:
    """``count`` sensors 3 m above the road, each flooding on its own schedule."""
    interval = parse_duration(sample_interval)
    return [
        SensorConfig(
            id=f"wl-sim-{i:03d}",
            gateway="gw-sim",
            placement=Placement(district="d-sim"),
            mount_height_cm=300,
            sample_interval=interval,
            simulation=SimulatedRain(
                start_after=timedelta(seconds=5 + 7 * i),
                rise=timedelta(seconds=60),
                plateau=timedelta(seconds=60),
                drain=timedelta(seconds=90),
                peak_depth_cm=12 + 8 * (i % 4),
            ),
        )
        for i in range(count)
    ]


def dev_eui_of(sensor: SensorConfig, index: int) -> str:
    if isinstance(sensor.transport, LorawanTransport):
        return sensor.transport.dev_eui.lower()
    return f"24e1241200{index:06x}"


@sim_app.command("sensor")
def sim_sensor(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Site config; default: synthetic sensors.")
    ] = None,
    gateway: Annotated[
        str | None, typer.Option("--gateway", "-g", help="Only the sensors behind this gateway.")
    ] = None,
    sensors: Annotated[int, typer.Option(help="How many synthetic sensors (no --config).")] = 3,
    interval: Annotated[str, typer.Option(help="Synthetic sensors' sample interval.")] = "5s",
    modbus_port: Annotated[
        int | None, typer.Option(help="Serve a Modbus TCP server on this port (0: any free).")
    ] = None,
    modbus_host: Annotated[str, typer.Option(help="Modbus server bind address.")] = "127.0.0.1",
    framer: Annotated[
        str, typer.Option(help="socket (Modbus TCP) or rtu (RTU frames over TCP).")
    ] = "socket",
    chirpstack_url: Annotated[
        str | None, typer.Option(help="Publish ChirpStack uplinks to mqtt://host:port.")
    ] = None,
    chirpstack_version: Annotated[str, typer.Option(help="v4 or v3 field names.")] = "v4",
    application_id: Annotated[str, typer.Option(help="ChirpStack application id.")] = "1",
    username: Annotated[str | None, typer.Option(help="Broker username.")] = None,
    password: Annotated[str | None, typer.Option(envvar="CITYWATCH_SIM_PASSWORD")] = None,
    fault: FaultOpt = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
) -> None:
    """Serve simulated water-level sensors over Modbus TCP and/or ChirpStack MQTT uplinks."""
    from citywatch.hardware.water.modbus_server import SimulatedUnit, WaterSensorServer
    from citywatch.hardware.water.sim import SimulatedWaterSensor

    if modbus_port is None and chirpstack_url is None:
        raise typer.BadParameter("give --modbus-port, --chirpstack-url or both")
    if framer not in ("socket", "rtu"):
        raise typer.BadParameter(f"--framer must be socket or rtu, got {framer!r}")
    if chirpstack_version not in ("v4", "v3"):
        raise typer.BadParameter(
            f"--chirpstack-version must be v4 or v3, got {chirpstack_version!r}"
        )
    extra_faults = [parse_fault(f) for f in fault or []]
    if config is not None:
        cfg = load_config_or_exit(config)
        chosen = [s for s in cfg.devices.sensors if gateway is None or s.gateway == gateway]
    else:
        chosen = synthetic_sensors(sensors, interval)
    if not chosen:
        raise typer.BadParameter("no sensors to simulate (check --gateway)")

    simulated = [
        SimulatedWaterSensor(
            s.mount_height_cm,
            s.simulation,
            seed=i,
            faults=(*s.simulated_faults, *extra_faults),
        )
        for i, s in enumerate(chosen)
    ]
    table = Table(title="simulated water-level sensors")
    for column in ("sensor", "Modbus unit", "DevEUI", "faults"):
        table.add_column(column)
    units = []
    for i, (sensor, sim) in enumerate(zip(chosen, simulated, strict=True)):
        transport = sensor.transport
        unit_id = transport.unit_id if isinstance(transport, ModbusTcpTransport) else i + 1
        register_map = (
            transport.register_map if isinstance(transport, ModbusTcpTransport) else RegisterMap()
        )
        units.append(SimulatedUnit(unit_id, sim, register_map))
        table.add_row(
            sensor.id,
            str(unit_id) if modbus_port is not None else "–",
            dev_eui_of(sensor, i) if chirpstack_url else "–",
            ", ".join(f.type for f in sim.faults) or "none",
        )
    console.print(table)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server = None
    if modbus_port is not None:
        from pymodbus.framer import FramerType

        server = WaterSensorServer(
            units,
            host=modbus_host,
            port=modbus_port,
            framer=FramerType.RTU if framer == "rtu" else FramerType.SOCKET,
        )
        server.start()
        console.print(f"Modbus TCP ({framer}) on {modbus_host}:{server.port}")
    publisher = None
    if chirpstack_url is not None:
        publisher = UplinkPublisher(
            chirpstack_url,
            username,
            password,
            chosen,
            simulated,
            application_id,
            "v4" if chirpstack_version == "v4" else "v3",
        )
        publisher.start()
        console.print(f"ChirpStack {chirpstack_version} uplinks to {chirpstack_url}")
    started = time.monotonic()
    try:
        while not stop.is_set():
            if duration is not None and time.monotonic() - started >= duration:
                break
            if publisher is not None:
                publisher.step(time.monotonic() - started)
            stop.wait(0.1)
    finally:
        if server is not None:
            server.stop()
        if publisher is not None:
            publisher.close()
    reads = sum(u.reads for u in units)
    sent = publisher.sent if publisher is not None else 0
    console.print(f"served {reads} Modbus reads, published {sent} uplinks")


class UplinkPublisher:
    """Publishes each sensor's reading as a ChirpStack uplink at its sample interval."""

    def __init__(
        self,
        url: str,
        username: str | None,
        password: str | None,
        sensors: list[SensorConfig],
        simulated: Sequence[SimulatedWaterSensor],
        application_id: str,
        version: Literal["v4", "v3"],
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise typer.BadParameter(
                f"--chirpstack-url must look like mqtt://host:port, got {url!r}"
            )
        self.sensors = sensors
        self.simulated = simulated
        self.application_id = application_id
        self.version = version
        self.sent = 0
        self._next = [0.0] * len(sensors)
        self._f_cnt = [0] * len(sensors)
        self._client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        if username:
            self._client.username_pw_set(username, password)
        if parts.scheme == "mqtts":
            self._client.tls_set()
        self._host = parts.hostname
        self._port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)

    def start(self) -> None:
        self._client.connect(self._host, self._port)
        self._client.loop_start()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def step(self, elapsed: float) -> None:
        from citywatch.hardware.water.codecs import encode_em500_udl
        from citywatch.hardware.water.lorawan import encode_chirpstack_v3, encode_chirpstack_v4
        from citywatch.hardware.water.sim import SimulatedWaterSensor

        now = datetime.now(UTC)
        for i, sensor in enumerate(self.sensors):
            if elapsed < self._next[i]:
                continue
            self._next[i] = elapsed + sensor.sample_interval.total_seconds()
            sim = self.simulated[i]
            assert isinstance(sim, SimulatedWaterSensor)
            reading = sim.sample(now, elapsed)
            if reading is None:
                continue
            data = encode_em500_udl(reading.distance_mm, reading.battery_pct)
            self._f_cnt[i] += 1
            eui = dev_eui_of(sensor, i)
            if self.version == "v4":
                topic, payload = encode_chirpstack_v4(
                    dev_eui=eui,
                    application_id=self.application_id,
                    data=data,
                    time=now,
                    f_cnt=self._f_cnt[i],
                    device_name=sensor.id,
                )
            else:
                topic, payload = encode_chirpstack_v3(
                    dev_eui=eui,
                    application_id=int(self.application_id) if self.application_id.isdigit() else 1,
                    data=data,
                    time=now,
                    f_cnt=self._f_cnt[i],
                    device_name=sensor.id,
                )
            self._client.publish(topic, payload, qos=0)
            self.sent += 1


sim_app.command("dock")(sim_dock)
