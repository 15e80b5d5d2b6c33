"""The sensor gateway shell: Modbus and LoRaWAN sources feed the agent; errors are counted."""

from __future__ import annotations

import queue
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from citywatch.cli.sim_cmds import sim_app
from citywatch.config import CitywatchConfig
from citywatch.config.sensor import (
    LorawanTransport,
    ModbusTcpTransport,
    NetworkServer,
    RegisterMap,
    SimulatedRain,
)
from citywatch.contracts import Alert, Telemetry
from citywatch.edge.outbox import PutResult
from citywatch.edge.sensor.agent import SensorAgentStats, run_sensor_gateway
from citywatch.edge.sensor.sources import Counts, Inbox, UplinkRouter
from citywatch.hardware.water.codecs import encode_em500_udl
from citywatch.hardware.water.lorawan import encode_chirpstack_v4
from citywatch.hardware.water.modbus_server import SimulatedUnit, WaterSensorServer
from citywatch.hardware.water.reading import WaterReading
from citywatch.hardware.water.sim import SimulatedWaterSensor

GATEWAY = "gw-sensors-east"
MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
)
EUI = "24e124126c091234"


class Recorder:
    """A publisher that keeps what the agent would have stored in the outbox."""

    def __init__(self) -> None:
        self.messages: list[Alert | Telemetry] = []

    def publish_many(self, messages: Sequence[Alert | Telemetry]) -> PutResult:
        self.messages += messages
        return PutResult(len(messages), 0, 0, ())

    def pump(self) -> int:
        return 0


def with_transports(config: CitywatchConfig, transports: Sequence[object]) -> CitywatchConfig:
    sensors = [
        s.model_copy(
            update={
                "transport": t,
                "sample_interval": timedelta(milliseconds=200),
                "telemetry_interval": timedelta(seconds=1),
            }
        )
        for s, t in zip(config.devices.sensors, transports, strict=False)
    ]
    return config.model_copy(
        update={"devices": config.devices.model_copy(update={"sensors": tuple(sensors)})}
    )


def test_router_counts_malformed_unknown_and_good_uplinks() -> None:
    """Good uplinks become readings of the right sensor; the rest are counted by cause."""
    inbox: Inbox = queue.SimpleQueue()
    counts = Counts()
    router = UplinkRouter({EUI: ("wl-1", "milesight_em500_udl")}, inbox, counts)
    now = datetime(2025, 7, 1, tzinfo=UTC)
    topic, good = encode_chirpstack_v4(
        dev_eui=EUI, application_id="a", data=encode_em500_udl(2800, 77), time=now, f_cnt=1
    )
    _, stranger = encode_chirpstack_v4(
        dev_eui="00" * 8, application_id="a", data=b"", time=now, f_cnt=1
    )
    _, garbage = encode_chirpstack_v4(
        dev_eui=EUI, application_id="a", data=b"\x09\x09\x09", time=now, f_cnt=2
    )
    assert router.handle(topic, good, now) == 1
    assert router.handle("application/a/device/0000000000000000/event/up", stranger, now) == 0
    assert router.handle(topic, garbage, now) == 0
    assert router.handle(topic, b"{", now) == 0
    assert inbox.get_nowait() == ("wl-1", WaterReading(2800.0, 77.0, now))
    assert counts.snapshot() == {
        "lorawan.readings": 1,
        "lorawan.unknown_device": 1,
        "lorawan.PayloadError": 1,
        "lorawan.MalformedUplink": 1,
    }


@pytest.mark.service
def test_gateway_reads_modbus_units_and_counts_a_unit_that_does_not_answer(
    demo_config: CitywatchConfig,
) -> None:
    """Two sensors on one simulated Modbus bus; the third's unit id has no unit behind it."""
    rain = SimulatedRain(start_after=timedelta(0), rise=timedelta(seconds=1), peak_depth_cm=20)
    units = [
        SimulatedUnit(1, SimulatedWaterSensor(300, rain), RegisterMap()),
        SimulatedUnit(2, SimulatedWaterSensor(250, None), RegisterMap()),
    ]
    with WaterSensorServer(units) as server:
        transports = [
            ModbusTcpTransport(type="modbus_tcp", host="127.0.0.1", port=server.port, unit_id=u)
            for u in (1, 2, 9)
        ]
        config = with_transports(demo_config, transports)
        recorder = Recorder()
        stats = SensorAgentStats()
        run_sensor_gateway(
            config,
            GATEWAY,
            recorder,
            threading.Event(),
            2.0,
            stats=stats,
            simulator=SimulatedWaterSensor.for_sensor,
        )
    counts = stats.counts.snapshot()
    assert counts["modbus.readings"] >= 10
    assert counts.get("modbus.ModbusReadError", 0) >= 5  # unit 9 never answers
    telemetry = [m for m in recorder.messages if isinstance(m, Telemetry)]
    assert {t.device.id for t in telemetry} == {"wl-underpass-01", "wl-hebin-02"}


@pytest.mark.service
@pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed")
def test_gateway_hears_chirpstack_uplinks_from_the_simulator(
    demo_config: CitywatchConfig, tmp_path: Path
) -> None:
    """`citywatch sim sensor --chirpstack-url` publishes; the gateway's listener decodes."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    assert MOSQUITTO is not None
    broker = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        server = NetworkServer(url=f"mqtt://127.0.0.1:{port}")
        eui = "24e1241200000000"  # the simulator's DevEUI for its first synthetic sensor
        transport = LorawanTransport(type="lorawan", dev_eui=eui, network_server=server)
        config = with_transports(demo_config, [transport])
        config = config.model_copy(
            update={
                "devices": config.devices.model_copy(update={"sensors": config.devices.sensors[:1]})
            }
        )
        recorder = Recorder()
        stats = SensorAgentStats()
        agent = threading.Thread(
            target=run_sensor_gateway,
            args=(config, GATEWAY, recorder, threading.Event(), 4.0),
            kwargs={"stats": stats},
        )
        agent.start()
        time.sleep(0.5)
        app = typer.Typer()
        app.add_typer(sim_app, name="sim")
        result = CliRunner().invoke(
            app,
            [
                "sim",
                "sensor",
                "--sensors",
                "1",
                "--interval",
                "200ms",
                "--duration",
                "2.5",
                "--chirpstack-url",
                f"mqtt://127.0.0.1:{port}",
            ],
        )
        agent.join(10)
    finally:
        broker.terminate()
        broker.wait(10)
    assert result.exit_code == 0, result.output
    assert stats.counts["lorawan.readings"] >= 5
    assert any(isinstance(m, Telemetry) for m in recorder.messages)
