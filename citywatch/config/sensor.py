"""Waterlogging sensors: transports, calibration, depth levels, edge logic and the simulator.

Sensors measure the distance to the surface below; depth = mount height − distance. Levels
are per site (DOMAIN.md: 15 cm one lane, 25 cm underpass closure, 40 cm closure reports).
Register maps and payload codecs differ by vendor, so they are per-device data here, never
code. Every knob has a default that is safe for a real city: a wrong guess costs a late
alert or a device-fault ticket, never a silenced flood.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, model_validator

from citywatch.config.base import ConfigModel, Duration, Identifier
from citywatch.config.secrets import SecretRef
from citywatch.config.site import Placement
from citywatch.contracts.messages import MAX_EARLIER_READINGS


class DepthLevel(ConfigModel):
    """One named depth threshold; crossing it upwards raises or raises the alert level."""

    name: Identifier = Field(description="level name shown to the center, e.g. 'lane'")
    depth_cm: float = Field(gt=0, le=500, description="water depth that enters this level")
    label: str = Field(default="", description="display text, e.g. 单车道受阻")


DEFAULT_LEVELS = (
    DepthLevel(name="lane", depth_cm=15, label="一条车道积水 one lane affected"),
    DepthLevel(name="underpass_closure", depth_cm=25, label="下穿通道封闭 close underpasses"),
    DepthLevel(name="closure", depth_cm=40, label="道路封闭 close the road"),
)


class LevelPolicy(ConfigModel):
    """How readings become level changes without chatter (±1 cm noise, passing vehicles)."""

    levels: tuple[DepthLevel, ...] = Field(default=DEFAULT_LEVELS, min_length=1)
    hysteresis_cm: float = Field(
        default=2.0, ge=0, le=50, description="depth must fall this far below a level to leave it"
    )
    min_duration: Duration = Field(
        default=timedelta(seconds=30),
        description="a level must hold this long before it is reported (both ways)",
    )
    update_every: Duration | None = Field(
        default=timedelta(minutes=15),
        gt=timedelta(0),
        description="while water holds at a level, repeat it as an update this often, so the"
        " work order never ages out while the road is flooded (keep it under the waterlogging"
        " dedup window); null: only level changes are sent",
    )

    @model_validator(mode="after")
    def _levels_ascend(self) -> LevelPolicy:
        depths = [level.depth_cm for level in self.levels]
        if depths != sorted(depths) or len(set(depths)) != len(depths):
            raise ValueError(f"levels must have strictly ascending depth_cm, got {depths}")
        return self


# -- edge logic ------------------------------------------------------------------------------
class SpikeFilter(ConfigModel):
    """A running median over the last readings: a passing vehicle's bow wave or a bird under
    the transducer is one or two readings off, and the median ignores them."""

    window: int = Field(
        default=3,
        ge=1,
        le=31,
        description="median over this many readings (odd); 1 disables the filter. Removes"
        " spikes up to (window-1)/2 readings long and delays a real step by as many readings;"
        " min_duration already covers longer chatter",
    )

    @model_validator(mode="after")
    def _odd(self) -> SpikeFilter:
        if self.window % 2 == 0:
            raise ValueError(f"window must be odd so the median is a reading, got {self.window}")
        return self


class RateOfRise(ConfigModel):
    """An early warning: the water rises fast, before it reaches the first level."""

    enabled: bool = Field(default=True, description="raise rate-of-rise alerts for this sensor")
    rise_cm_per_min: float = Field(
        default=1.0,
        gt=0,
        le=100,
        description="alert when the filtered depth rises at least this fast (least-squares"
        " slope over the window)",
    )
    clear_cm_per_min: float = Field(
        default=0.2,
        ge=0,
        le=100,
        description="the alert ends when the rise slows below this (hysteresis); must be"
        " below rise_cm_per_min",
    )
    window: Duration = Field(
        default=timedelta(minutes=5),
        ge=timedelta(seconds=10),
        le=timedelta(hours=2),
        description="readings the slope is fitted over; longer is smoother and later",
    )
    min_depth_cm: float = Field(
        default=5.0,
        ge=0,
        le=200,
        description="ignore rises below this depth (a puddle's ripples on a dry road)",
    )
    min_duration: Duration = Field(
        default=timedelta(minutes=1),
        ge=timedelta(0),
        le=timedelta(hours=1),
        description="the fast rise must hold this long before the alert starts",
    )

    @model_validator(mode="after")
    def _clear_below_rise(self) -> RateOfRise:
        if self.clear_cm_per_min >= self.rise_cm_per_min:
            raise ValueError(
                f"clear_cm_per_min ({self.clear_cm_per_min}) must be below rise_cm_per_min"
                f" ({self.rise_cm_per_min}), or the alert would flap"
            )
        return self


class FaultPolicy(ConfigModel):
    """When a sensor's readings stop being trustworthy: a ``device_fault`` alert goes to the
    operations IT department, and the level logic stops listening to the sensor until it
    recovers (a broken sensor never raises or ends a flood alert)."""

    stuck_after: Duration = Field(
        default=timedelta(hours=2),
        ge=timedelta(seconds=10),
        le=timedelta(days=7),
        description="readings that do not change (within stuck_tolerance_mm) for this long"
        " mean a stuck sensor. Long by default: a sensor reporting whole centimetres over a"
        " dry road can legitimately repeat itself for a while",
    )
    stuck_tolerance_mm: float = Field(
        default=0.0, ge=0, le=100, description="changes up to this size still count as stuck"
    )
    out_of_range_after: int = Field(
        default=3,
        ge=1,
        le=1000,
        description="consecutive unusable readings (inside the blind zone, beyond the mount"
        " height plus margin, not a number, or flagged by the sensor) before a fault",
    )
    max_distance_margin_cm: float = Field(
        default=50.0,
        ge=0,
        le=1000,
        description="a distance this far beyond the mount height is out of range (a pothole"
        " or a slanted echo reads slightly long; a lost echo reads the maximum)",
    )
    silent_after: Duration | None = Field(
        default=None,
        ge=timedelta(seconds=1),
        le=timedelta(days=2),
        description="no reading for this long means the sensor is silent; default five"
        " sample intervals, at least one minute",
    )
    battery_low_pct: float = Field(
        default=20.0, ge=0, le=100, description="battery below this raises a battery-low fault"
    )
    battery_ok_pct: float = Field(
        default=25.0,
        ge=0,
        le=100,
        description="the battery fault ends above this (hysteresis; at least battery_low_pct)",
    )
    erratic_spike_cm: float = Field(
        default=10.0,
        gt=0,
        le=500,
        description="a reading this far from the one before counts as a spike",
    )
    erratic_fraction: float = Field(
        default=0.3,
        gt=0,
        le=1,
        description="more than this fraction of spikes among the last erratic_window readings"
        " means an erratic sensor (occasional spikes are only filtered); it clears after a"
        " whole window without one",
    )
    erratic_window: int = Field(
        default=60, ge=3, le=1000, description="readings the spike fraction is counted over"
    )

    @model_validator(mode="after")
    def _battery_hysteresis(self) -> FaultPolicy:
        if self.battery_ok_pct < self.battery_low_pct:
            raise ValueError(
                f"battery_ok_pct ({self.battery_ok_pct}) must be at least battery_low_pct"
                f" ({self.battery_low_pct})"
            )
        return self

    def silent_after_for(self, sample_interval: timedelta) -> timedelta:
        """The silence that raises a fault for a sensor sampled every ``sample_interval``."""
        if self.silent_after is not None:
            return self.silent_after
        return max(5 * sample_interval, timedelta(minutes=1))


# -- transports ------------------------------------------------------------------------------
class RegisterField(ConfigModel):
    """One value in a Modbus register map: value = raw × scale + offset."""

    address: int = Field(ge=0, le=65535, description="register address, 0-based as on the wire")
    type: Literal["uint16", "int16", "uint32", "int32", "float32"] = Field(
        default="uint16", description="how the register(s) encode the value"
    )
    scale: float = Field(default=1.0, description="multiplier from raw to the field's unit")
    offset: float = Field(default=0.0, description="added after scaling")
    word_order: Literal["big", "little"] = Field(
        default="big", description="for 32-bit types: which register holds the high word"
    )

    @model_validator(mode="after")
    def _scale_not_zero(self) -> RegisterField:
        if self.scale == 0:
            raise ValueError("scale 0 would turn every reading into the offset")
        return self

    @property
    def width(self) -> int:
        """How many 16-bit registers the value occupies."""
        return 1 if self.type in ("uint16", "int16") else 2


class RegisterMap(ConfigModel):
    """Where one vendor's water-level unit keeps distance, battery and status.

    The default is the layout of citywatch's simulator (`citywatch sim sensor`): distance in
    mm at 0, battery in 0.1 % at 1, a status word at 2.
    """

    table: Literal["holding", "input"] = Field(
        default="holding", description="holding registers (function 3) or input registers (4)"
    )
    distance_mm: RegisterField = Field(
        default=RegisterField(address=0), description="distance to the surface, scaled to mm"
    )
    battery_pct: RegisterField | None = Field(
        default=RegisterField(address=1, scale=0.1),
        description="battery charge scaled to percent; null when the unit is mains powered",
    )
    status: RegisterField | None = Field(
        default=RegisterField(address=2), description="status word; null when there is none"
    )
    fault_mask: int = Field(
        default=0x0001,
        ge=0,
        le=0xFFFF,
        description="status bits meaning the measurement is invalid (no echo, blocked)",
    )

    @model_validator(mode="after")
    def _no_overlap(self) -> RegisterMap:
        spans: list[tuple[str, int, int]] = []
        for name in ("distance_mm", "battery_pct", "status"):
            field = getattr(self, name)
            if field is not None:
                spans.append((name, field.address, field.address + field.width))
        for i, (name, start, end) in enumerate(spans):
            for other, o_start, o_end in spans[i + 1 :]:
                if start < o_end and o_start < end:
                    raise ValueError(f"registers of {name} and {other} overlap")
        return self


class SimulatedTransport(ConfigModel):
    """Readings come from the in-process simulator (``simulation`` and ``simulated_faults``)."""

    type: Literal["simulated"] = "simulated"


class ModbusTcpTransport(ConfigModel):
    """A unit (or an RS485-to-Ethernet converter) answering Modbus TCP."""

    type: Literal["modbus_tcp"]
    host: str = Field(min_length=1, description="IP or name of the unit or serial server")
    port: int = Field(default=502, ge=1, le=65535)
    unit_id: int = Field(default=1, ge=0, le=247, description="Modbus device (slave) id")
    framer: Literal["socket", "rtu"] = Field(
        default="socket",
        description="socket: Modbus TCP; rtu: RTU frames over TCP (transparent serial servers)",
    )
    register_map: RegisterMap = Field(default=RegisterMap())
    timeout: Duration = Field(
        default=timedelta(seconds=1),
        ge=timedelta(milliseconds=50),
        le=timedelta(seconds=30),
        description="a unit that does not answer within this is a missed reading",
    )


class ModbusRtuTransport(ConfigModel):
    """A unit on an RS485 line read through a serial port on the gateway."""

    type: Literal["modbus_rtu"]
    port: str = Field(min_length=1, description="serial device, e.g. /dev/ttyUSB0")
    baudrate: int = Field(default=9600, ge=1200, le=115200)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    unit_id: int = Field(default=1, ge=1, le=247, description="Modbus device (slave) id")
    register_map: RegisterMap = Field(default=RegisterMap())
    timeout: Duration = Field(
        default=timedelta(seconds=1), ge=timedelta(milliseconds=50), le=timedelta(seconds=30)
    )


class NetworkServer(ConfigModel):
    """The MQTT integration of a LoRaWAN network server (ChirpStack v3 or v4)."""

    url: str = Field(
        pattern=r"^mqtts?://[^/:]+(:\d+)?/?$", description="mqtt://host:port of its broker"
    )
    username: str | None = None
    password: SecretRef | None = None
    topic: str = Field(
        default="application/+/device/+/event/up",
        min_length=1,
        description="uplink topic filter (ChirpStack v3 and v4 both use this layout)",
    )


class LorawanTransport(ConfigModel):
    """A LoRaWAN unit whose uplinks arrive through a network server's MQTT integration."""

    type: Literal["lorawan"]
    dev_eui: str = Field(pattern=r"^[0-9A-Fa-f]{16}$", description="the unit's DevEUI (hex)")
    codec: Literal["milesight_em500_udl"] = Field(
        default="milesight_em500_udl", description="payload layout of the unit"
    )
    network_server: NetworkServer


SensorTransport = Annotated[
    SimulatedTransport | ModbusTcpTransport | ModbusRtuTransport | LorawanTransport,
    Field(discriminator="type"),
]


# -- simulator -------------------------------------------------------------------------------
class SimulatedRain(ConfigModel):
    """A rain event's hydrograph for the simulated sensor: rise, plateau, drain."""

    start_after: Duration = Field(default=timedelta(seconds=2))
    rise: Duration = Field(default=timedelta(minutes=10))
    plateau: Duration = Field(default=timedelta(minutes=10))
    drain: Duration = Field(default=timedelta(minutes=15))
    peak_depth_cm: float = Field(default=30.0, ge=0, le=300)
    noise_cm: float = Field(default=0.5, ge=0, le=10)
    repeat_every: Duration | None = Field(
        default=None,
        description="start the same event again this long after the previous start (a"
        " storm of showers); at least rise + plateau + drain",
    )

    @model_validator(mode="after")
    def _repeat_after_the_event(self) -> SimulatedRain:
        if self.repeat_every is not None and self.repeat_every < (
            self.rise + self.plateau + self.drain
        ):
            raise ValueError("repeat_every must be at least rise + plateau + drain")
        return self


class SimulatedFault(ConfigModel):
    """A fault the simulator injects into one sensor's readings."""

    type: Literal["stuck", "spikes", "dropout", "battery_low", "no_echo"] = Field(
        description="stuck: the reading freezes; spikes: random readings far off; dropout:"
        " no readings; battery_low: the battery reads battery_pct; no_echo: the status word"
        " flags an invalid measurement"
    )
    start_after: Duration = Field(description="when the fault begins, from the simulation start")
    duration: Duration | None = Field(default=None, description="how long; null: for ever")
    spike_cm: float = Field(default=60.0, gt=0, le=500, description="size of each spike")
    spike_probability: float = Field(
        default=0.5, gt=0, le=1, description="share of readings that spike during the fault"
    )
    battery_pct: float = Field(default=10.0, ge=0, le=100)


class SensorConfig(ConfigModel):
    id: Identifier
    gateway: Identifier
    name: str = ""
    placement: Placement
    transport: SensorTransport = Field(default=SimulatedTransport())
    mount_height_cm: float = Field(gt=0, le=2000, description="sensor face to dry road surface")
    blind_zone_cm: float = Field(
        default=20, ge=0, le=200, description="distances shorter than this are unreliable"
    )
    sample_interval: Duration = Field(
        default=timedelta(seconds=5),
        ge=timedelta(milliseconds=10),
        le=timedelta(hours=6),
        description="how often the gateway polls the sensor; for LoRaWAN, the unit's uplink"
        " interval (what silence is measured against)",
    )
    telemetry_interval: Duration = Field(
        default=timedelta(minutes=1),
        ge=timedelta(milliseconds=10),
        le=timedelta(days=1),
        description="how often a telemetry message (depth, distance, battery) is sent",
    )
    telemetry_every_sample: bool = Field(
        default=False,
        description="carry every sample taken since the last telemetry message in it (its"
        " 'earlier' readings), not only the latest: a full-resolution depth curve for one"
        " publish per telemetry_interval",
    )
    level_policy: LevelPolicy | None = Field(
        default=None, description="overrides the site's waterlogging.level_policy"
    )
    spike_filter: SpikeFilter = Field(default=SpikeFilter())
    rate_of_rise: RateOfRise = Field(default=RateOfRise())
    faults: FaultPolicy = Field(default=FaultPolicy())
    simulation: SimulatedRain | None = Field(
        default=None, description="drive this sensor from a simulated rain event"
    )
    simulated_faults: tuple[SimulatedFault, ...] = Field(
        default=(), description="faults the simulator injects (simulated transport, `sim sensor`)"
    )

    @model_validator(mode="after")
    def _samples_fit_one_message(self) -> SensorConfig:
        per_message = self.telemetry_interval / self.sample_interval
        if self.telemetry_every_sample and per_message > MAX_EARLIER_READINGS + 1:
            raise ValueError(
                f"telemetry_every_sample: telemetry_interval / sample_interval is {per_message:.0f}"
                f" samples per message; at most {MAX_EARLIER_READINGS + 1} fit (shorten"
                " telemetry_interval)"
            )
        return self
