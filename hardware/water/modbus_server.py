"""A Modbus TCP server full of simulated water-level units, for the demo and the tests.

Each unit is a pymodbus ``SimDevice`` (its unit id, its own register map); on every read
request the registers are refreshed from a :class:`SimulatedWaterSensor`, so a client sees
the hydrograph and the injected faults move in real time. A dropout answers with exception
0x0B, "gateway target device failed to respond", as an RS485-to-Ethernet gateway does when
the unit behind it stays silent.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from citywatch.config.sensor import RegisterMap
from citywatch.hardware.water.modbus import encode_registers
from citywatch.hardware.water.sim import SimulatedWaterSensor

__all__ = ["SimulatedUnit", "WaterSensorServer"]

log = logging.getLogger(__name__)


@dataclass
class SimulatedUnit:
    """One simulated unit behind the server."""

    unit_id: int
    sensor: SimulatedWaterSensor
    register_map: RegisterMap
    reads: int = 0
    dropped: int = 0


class WaterSensorServer:
    """A Modbus TCP (or RTU-over-TCP) server in a background thread.

    ``port=0`` picks a free port; :attr:`port` tells which once :meth:`start` returned.
    ``clock`` gives seconds since an arbitrary origin (elapsed time drives the hydrograph).
    """

    def __init__(
        self,
        units: list[SimulatedUnit],
        host: str = "127.0.0.1",
        port: int = 0,
        framer: FramerType = FramerType.SOCKET,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not units:
            raise ValueError("a server needs at least one simulated unit")
        ids = [u.unit_id for u in units]
        if len(set(ids)) != len(ids):
            raise ValueError(f"unit ids must be unique, got {ids}")
        self.units = {u.unit_id: u for u in units}
        self.host = host
        self.port = port
        self.framer = framer
        self._clock = clock
        self._now = now
        self._started_at = clock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: ModbusTcpServer | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self, timeout_s: float = 10.0) -> None:
        """Start serving; returns once the port accepts connections."""
        self._thread = threading.Thread(target=self._run, name="modbus-sim", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError(f"the Modbus simulator did not start within {timeout_s}s")
        if self._error is not None:
            raise OSError(f"the Modbus simulator could not start: {self._error}")

    def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is not None and server is not None and loop.is_running():
            asyncio.run_coroutine_threadsafe(server.shutdown(), loop).result(timeout=10)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> WaterSensorServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        devices = [self._device(unit) for unit in self.units.values()]
        self._server = ModbusTcpServer(devices, framer=self.framer, address=(self.host, self.port))
        await self._server.serve_forever(background=True)
        listener = self._server.transport
        sockets = getattr(listener, "sockets", None)
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        self._ready.set()
        await self._server.serving

    # -- registers ----------------------------------------------------------------------------
    def _device(self, unit: SimulatedUnit) -> SimDevice:
        size = max(
            f.address + f.width
            for f in (
                unit.register_map.distance_mm,
                unit.register_map.battery_pct,
                unit.register_map.status,
            )
            if f is not None
        )
        return SimDevice(
            id=unit.unit_id,
            simdata=[SimData(0, count=size, values=0, datatype=DataType.REGISTERS)],
            action=partial(self._refresh, unit),
        )

    async def _refresh(
        self,
        unit: SimulatedUnit,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """pymodbus calls this before answering: put the unit's current reading in place."""
        elapsed = self._clock() - self._started_at
        reading = unit.sensor.sample(self._now(), elapsed)
        unit.reads += 1
        if reading is None:
            unit.dropped += 1
            return ExcCodes.GATEWAY_NO_RESPONSE
        values = encode_registers(
            unit.register_map, reading.distance_mm, reading.battery_pct, reading.status
        )
        for register, word in values.items():
            index = register - start_address
            if 0 <= index < len(registers):
                registers[index] = word
        return None
