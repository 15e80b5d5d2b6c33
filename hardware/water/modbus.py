"""Modbus water-level units (TCP, RTU, RTU over TCP) read through pymodbus.

Register maps differ by vendor, so the map is per-device data (``transport.register_map``):
this module only knows how to turn the registers a map names into a
:class:`WaterReading` (:func:`decode_registers`), the reverse for the simulator
(:func:`encode_registers`), and how to ask a unit for them (:class:`ModbusWaterSensor`).
Every failure is a :class:`ModbusReadError` that says which unit and why; the caller counts
it as a missed reading and polls again later.
"""

from __future__ import annotations

import logging
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerType

from citywatch.config.sensor import (
    ModbusRtuTransport,
    ModbusTcpTransport,
    RegisterField,
    RegisterMap,
)
from citywatch.hardware.water.reading import WaterReading

__all__ = [
    "MAX_REGISTERS_PER_READ",
    "ModbusReadError",
    "ModbusWaterSensor",
    "RegisterMapError",
    "decode_registers",
    "encode_registers",
    "make_client",
    "read_spans",
]

log = logging.getLogger(__name__)

MAX_REGISTERS_PER_READ = 125
"""The protocol's limit for one read-registers request."""

_FORMATS = {"uint16": ">H", "int16": ">h", "uint32": ">I", "int32": ">i", "float32": ">f"}
_FIELDS = ("distance_mm", "battery_pct", "status")


class ModbusReadError(Exception):
    """A unit did not answer, answered with an exception code, or sent unusable registers."""


class RegisterMapError(ModbusReadError):
    """The registers a map names are missing or do not decode (a map for another unit)."""


def _fields(register_map: RegisterMap) -> list[tuple[str, RegisterField]]:
    found = []
    for name in _FIELDS:
        field = getattr(register_map, name)
        if field is not None:
            found.append((name, field))
    return found


def read_spans(register_map: RegisterMap) -> list[tuple[int, int]]:
    """(start address, count) of the requests that fetch every register the map names.

    Neighbouring fields are read in one request while the span fits in one read; a map
    with fields far apart costs one request per field.
    """
    spans: list[tuple[int, int]] = []
    for start, end in sorted((f.address, f.address + f.width) for _, f in _fields(register_map)):
        if spans and end - spans[-1][0] <= MAX_REGISTERS_PER_READ:
            first, count = spans[-1]
            spans[-1] = (first, max(count, end - first))
        else:
            spans.append((start, end - start))
    return spans


def _decode_field(field: RegisterField, registers: Mapping[int, int]) -> float:
    words = []
    for address in range(field.address, field.address + field.width):
        if address not in registers:
            raise RegisterMapError(f"register {address} was not read")
        word = registers[address]
        if not 0 <= word <= 0xFFFF:
            raise RegisterMapError(f"register {address} holds {word}, not a 16-bit value")
        words.append(word)
    if field.word_order == "little":
        words.reverse()
    raw = b"".join(struct.pack(">H", w) for w in words)
    (value,) = struct.unpack(_FORMATS[field.type], raw)
    return float(value) * field.scale + field.offset


def decode_registers(
    register_map: RegisterMap, registers: Mapping[int, int], time: datetime
) -> WaterReading:
    """The reading a unit's registers (address → 16-bit word) describe under ``register_map``."""
    distance_mm = _decode_field(register_map.distance_mm, registers)
    if not math.isfinite(distance_mm):
        raise RegisterMapError(f"distance decodes to {distance_mm} (a float32 map on int data?)")
    battery = (
        None
        if register_map.battery_pct is None
        else _decode_field(register_map.battery_pct, registers)
    )
    status = (
        0 if register_map.status is None else int(_decode_field(register_map.status, registers))
    )
    return WaterReading(
        distance_mm=distance_mm,
        battery_pct=battery,
        time=time,
        status=status,
        flagged_invalid=bool(status & register_map.fault_mask),
    )


def _encode_field(field: RegisterField, value: float) -> list[int]:
    raw_value = (value - field.offset) / field.scale
    if field.type == "float32":
        packed = struct.pack(">f", raw_value)
    else:
        bits = 16 if field.width == 1 else 32
        signed = field.type.startswith("int")
        low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
        packed = struct.pack(_FORMATS[field.type], max(low, min(high, round(raw_value))))
    words = [struct.unpack(">H", packed[i : i + 2])[0] for i in range(0, len(packed), 2)]
    if field.word_order == "little":
        words.reverse()
    return words


def encode_registers(
    register_map: RegisterMap, distance_mm: float, battery_pct: float | None, status: int
) -> dict[int, int]:
    """The registers a unit following ``register_map`` would hold (for the simulator)."""
    values = {"distance_mm": distance_mm, "battery_pct": battery_pct or 0.0, "status": status}
    registers: dict[int, int] = {}
    for name, field in _fields(register_map):
        for offset, word in enumerate(_encode_field(field, values[name])):
            registers[field.address + offset] = word
    return registers


ModbusClient = ModbusTcpClient | ModbusSerialClient


def make_client(transport: ModbusTcpTransport | ModbusRtuTransport) -> ModbusClient:
    """A pymodbus client for the bus a sensor is on (not connected yet).

    ``retries=0``: a poll that fails is simply missed; the next poll is the retry, and the
    fault detector notices a unit that stays silent.
    """
    timeout_s = transport.timeout.total_seconds()
    if isinstance(transport, ModbusTcpTransport):
        framer = FramerType.RTU if transport.framer == "rtu" else FramerType.SOCKET
        return ModbusTcpClient(
            transport.host, port=transport.port, framer=framer, timeout=timeout_s, retries=0
        )
    return ModbusSerialClient(
        transport.port,
        framer=FramerType.RTU,
        baudrate=transport.baudrate,
        parity=transport.parity,
        stopbits=transport.stopbits,
        bytesize=transport.bytesize,
        timeout=timeout_s,
        retries=0,
    )


@dataclass
class ModbusWaterSensor:
    """One unit on a Modbus bus: ``read`` asks for its registers and decodes them."""

    client: ModbusClient
    unit_id: int
    register_map: RegisterMap
    name: str = ""

    def read(self, time: datetime) -> WaterReading:
        """Poll the unit now; raise :class:`ModbusReadError` saying what went wrong."""
        where = f"unit {self.unit_id}{f' ({self.name})' if self.name else ''}"
        if not self.client.connected and not self.client.connect():
            raise ModbusReadError(f"{where}: cannot connect to {self.client.comm_params.host}")
        registers: dict[int, int] = {}
        for start, count in read_spans(self.register_map):
            try:
                if self.register_map.table == "holding":
                    response = self.client.read_holding_registers(
                        start, count=count, device_id=self.unit_id
                    )
                else:
                    response = self.client.read_input_registers(
                        start, count=count, device_id=self.unit_id
                    )
            except ModbusException as exc:
                raise ModbusReadError(f"{where}: {exc}") from None
            if response.isError():
                raise ModbusReadError(
                    f"{where}: exception response {response} reading {count} registers at {start}"
                )
            if len(response.registers) < count:
                raise RegisterMapError(
                    f"{where}: asked for {count} registers at {start}, got {len(response.registers)}"
                )
            registers.update(zip(range(start, start + count), response.registers, strict=False))
        try:
            return decode_registers(self.register_map, registers, time)
        except RegisterMapError as exc:
            raise RegisterMapError(f"{where}: {exc}") from None
