"""Modbus water-level units: register maps decode real dumps; the simulator serves them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.framer import FramerType

from citywatch.config.sensor import (
    ModbusTcpTransport,
    RegisterField,
    RegisterMap,
    SimulatedFault,
    SimulatedRain,
)
from citywatch.hardware.water.modbus import (
    ModbusReadError,
    ModbusWaterSensor,
    RegisterMapError,
    decode_registers,
    encode_registers,
    make_client,
    read_spans,
)
from citywatch.hardware.water.modbus_server import SimulatedUnit, WaterSensorServer
from citywatch.hardware.water.sim import SimulatedWaterSensor

T0 = datetime(2025, 7, 1, 8, 0, tzinfo=UTC)
CASES = json.loads((Path(__file__).parents[1] / "data" / "modbus" / "registers.json").read_text())


@pytest.mark.parametrize("case", CASES["cases"], ids=lambda c: c["name"])
def test_register_dump_decodes_to_the_expected_reading(case: dict[str, Any]) -> None:
    """Each vendor-style map turns its register dump into distance, battery and status."""
    register_map = RegisterMap.model_validate(case["register_map"])
    registers = {int(k): v for k, v in case["registers"].items()}
    reading = decode_registers(register_map, registers, T0)
    expected = case["expected"]
    assert reading.distance_mm == pytest.approx(expected["distance_mm"])
    if expected["battery_pct"] is None:
        assert reading.battery_pct is None
    else:
        assert reading.battery_pct == pytest.approx(expected["battery_pct"])
    assert (reading.status, reading.flagged_invalid) == (
        expected["status"],
        expected["flagged_invalid"],
    )


@pytest.mark.parametrize(
    ("registers", "message"),
    [
        pytest.param({1: 985, 2: 0}, "register 0 was not read", id="missing register"),
        pytest.param({0: 70000, 1: 985, 2: 0}, "not a 16-bit value", id="word out of range"),
    ],
)
def test_malformed_register_dump_raises_a_register_map_error(
    registers: dict[int, int], message: str
) -> None:
    """A dump the map cannot decode is a typed error naming the register."""
    with pytest.raises(RegisterMapError, match=message):
        decode_registers(RegisterMap(), registers, T0)


def test_float32_nan_distance_is_a_register_map_error() -> None:
    """A float map read over integer data (NaN) is refused, not passed on as a depth."""
    register_map = RegisterMap(
        distance_mm=RegisterField(address=0, type="float32"), battery_pct=None, status=None
    )
    with pytest.raises(RegisterMapError, match="distance decodes"):
        decode_registers(register_map, {0: 0x7FC0, 1: 0}, T0)


def test_overlapping_fields_are_a_config_error() -> None:
    """A map whose 32-bit distance runs into the battery register is refused at load."""
    with pytest.raises(ValueError, match="overlap"):
        RegisterMap(distance_mm=RegisterField(address=0, type="uint32"))


def test_neighbouring_fields_are_read_in_one_request_and_distant_ones_apart() -> None:
    """Reads are grouped while they fit in one 125-register request."""
    assert read_spans(RegisterMap()) == [(0, 3)]
    far = RegisterMap(
        distance_mm=RegisterField(address=0), battery_pct=RegisterField(address=400), status=None
    )
    assert read_spans(far) == [(0, 1), (400, 1)]


@given(
    distance=st.integers(0, 65535),
    battery=st.integers(0, 1000),
    status=st.integers(0, 0xFFFF),
    kind=st.sampled_from(["uint16", "uint32", "int32", "float32"]),
    order=st.sampled_from(["big", "little"]),
)
def test_encode_then_decode_round_trips(
    distance: int, battery: int, status: int, kind: str, order: str
) -> None:
    """What the simulator writes is what the adapter reads, for every type and word order."""
    register_map = RegisterMap(
        distance_mm=RegisterField(address=4, type=kind, word_order=order),
        battery_pct=RegisterField(address=0, scale=0.1),
        status=RegisterField(address=1),
    )
    registers = encode_registers(register_map, distance, battery / 10, status)
    reading = decode_registers(register_map, registers, T0)
    assert reading.distance_mm == pytest.approx(distance)
    assert reading.battery_pct == pytest.approx(battery / 10)
    assert reading.status == status


@pytest.mark.service
@pytest.mark.parametrize("framer", ["socket", "rtu"])
def test_adapter_reads_simulated_units_over_tcp_and_a_dropout_is_a_read_error(framer: str) -> None:
    """Two units behind one simulator answer their unit ids; a dropout answers 0x0B."""
    rain = SimulatedRain(
        start_after=timedelta(0), rise=timedelta(seconds=1), peak_depth_cm=20, noise_cm=0
    )
    dropout = SimulatedFault(type="dropout", start_after=timedelta(0))
    units = [
        SimulatedUnit(1, SimulatedWaterSensor(300, None, battery_pct=91), RegisterMap()),
        SimulatedUnit(7, SimulatedWaterSensor(250, rain, faults=[dropout]), RegisterMap()),
    ]
    server = WaterSensorServer(
        units, framer=FramerType.RTU if framer == "rtu" else FramerType.SOCKET
    )
    with server:
        transport = ModbusTcpTransport(
            type="modbus_tcp",
            host="127.0.0.1",
            port=server.port,
            framer=framer,
        )
        client = make_client(transport)
        try:
            reading = ModbusWaterSensor(client, 1, RegisterMap()).read(T0)
            assert (reading.distance_mm, reading.battery_pct, reading.status) == (3000.0, 91.0, 0)
            with pytest.raises(ModbusReadError, match="unit 7"):
                ModbusWaterSensor(client, 7, RegisterMap()).read(T0)
        finally:
            client.close()
    assert units[1].dropped == 1


def test_unreachable_unit_is_a_read_error_not_a_crash() -> None:
    """Nothing listening: the adapter says it cannot connect, within its timeout."""
    transport = ModbusTcpTransport(type="modbus_tcp", host="127.0.0.1", port=1, timeout="200ms")
    client = make_client(transport)
    with pytest.raises(ModbusReadError, match="cannot connect"):
        ModbusWaterSensor(client, 1, RegisterMap()).read(T0)
