"""A simulated drone dock speaking the DJI Cloud API: patrol flights, OSD, photos, events.

The dock sits at its home position with the aircraft inside (powered off, so the topology
lists no sub-device) until a flight task starts; then the aircraft flies the patrol route
at constant height and speed (take-off and landing are instant), sends OSD at 1 Hz and
``flighttask_progress`` events, and takes a photo every interval. Each photo is rendered by
:mod:`citywatch.hardware.dock.aerial` with the planted objects at their known ground positions,
warped into the camera's view (pinhole, gimbal yaw along the flight leg, configured pitch),
stored as a JPEG in a local media folder under its object key, and announced by a
``file_upload_callback`` event carrying shoot position, altitudes and gimbal attitude.

Time is an argument: :meth:`SimulatedDock.advance` emits every message due up to a given
simulated second, so tests fly a whole patrol in milliseconds of wall time.
"""

from __future__ import annotations

import itertools
import json
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from citywatch.config.dock import DockConfig, PlantedObject
from citywatch.hardware.dock.aerial import AerialObject, Road, render_patch
from citywatch.hardware.dock.dji import encode_envelope, thing_topic, topo_topic

__all__ = ["SimPhoto", "SimulatedDock", "SimulatedLink", "ground_to_pixel", "simulated_link"]

_EARTH_M = 6_371_008.8
OSD_DOCK_S = 2.0
OSD_AIRCRAFT_S = 1.0
PROGRESS_S = 5.0
DOCK_GROUND_HEIGHT_M = 20.0
"""Ellipsoid height of the (flat) ground, for the OSD's absolute heights."""


@dataclass(frozen=True)
class SimPhoto:
    """What the simulator knows about a photo it took (for tests and the CLI's summary)."""

    object_key: str
    flight_id: str
    lat: float
    lon: float
    yaw_deg: float
    truth: tuple[tuple[str, float, float, float, float], ...]
    """(class, x1, y1, x2, y2) of each planted object in view."""


@dataclass
class _Flight:
    flight_id: str
    started_s: float
    next_osd_s: float
    next_progress_s: float
    next_photo_s: float
    photos: int = 0


@dataclass
class SimulatedDock:
    config: DockConfig
    media_dir: Path
    epoch: datetime = field(default_factory=lambda: datetime.now(UTC))
    aircraft_sn: str = "1581F5BKD225D00A0001"
    seed: int = 0
    photos: list[SimPhoto] = field(default_factory=list)
    replies: list[dict[str, object]] = field(default_factory=list)
    """Every reply the agent sent back (events_reply, status_reply), decoded."""
    awaiting_reply: set[str] = field(default_factory=set)
    """bids of events sent with ``need_reply`` that have no reply yet."""

    def __post_init__(self) -> None:
        if len(self.config.patrol_route) < 2:
            raise ValueError(f"dock {self.config.id}: a patrol route needs at least two waypoints")
        self.media_dir.mkdir(parents=True, exist_ok=True)
        self._now_s = -1.0
        self._next_dock_osd_s = 0.0
        self._next_takeoff_s = self.config.simulation.takeoff_after.total_seconds()
        self._flight: _Flight | None = None
        self._flights = 0
        self._battery = 95.0
        self._legs = _legs([(p.lat, p.lon) for p in self.config.patrol_route])
        self._route_m = sum(leg.length_m for leg in self._legs)

    # -- the clock ----------------------------------------------------------------------------
    def advance(self, t_s: float) -> list[tuple[str, bytes]]:
        """Every message due up to ``t_s`` simulated seconds since the epoch, in order."""
        out: list[tuple[str, bytes]] = []
        if self._now_s < 0:
            out.append(self._topology((), 0.0))
            self._now_s = 0.0
        sim = self.config.simulation
        while True:
            due = [self._next_dock_osd_s, self._next_takeoff_s]
            if self._flight is not None:
                f = self._flight
                due += [f.next_osd_s, f.next_progress_s, f.next_photo_s, self._landing_s(f)]
            t = min(due)
            if t > t_s:
                break
            self._now_s = t
            flight = self._flight
            if t == self._next_takeoff_s and flight is None:
                out += self._take_off(t)
                repeat = sim.repeat_every
                self._next_takeoff_s = t + repeat.total_seconds() if repeat else math.inf
            elif t == self._next_takeoff_s:
                self._next_takeoff_s = math.inf if sim.repeat_every is None else t + 1.0
            elif t == self._next_dock_osd_s:
                out.append(self._dock_osd(t))
                self._next_dock_osd_s = t + OSD_DOCK_S
            elif flight is not None and t == self._landing_s(flight):
                out += self._land(t, flight)
            elif flight is not None and t == flight.next_osd_s:
                out.append(self._aircraft_osd(t, flight))
                flight.next_osd_s = t + OSD_AIRCRAFT_S
            elif flight is not None and t == flight.next_progress_s:
                out.append(self._progress(t, flight, "in_progress"))
                flight.next_progress_s = t + PROGRESS_S
            elif flight is not None:
                out.append(self._photo(t, flight))
                flight.next_photo_s = t + sim.photo_interval.total_seconds()
        self._now_s = t_s
        return out

    def receive(self, topic: str, payload: bytes) -> None:
        """A message from the cloud side (the agent's replies)."""
        body = json.loads(payload)
        self.replies.append({"topic": topic, **body})
        self.awaiting_reply.discard(str(body.get("bid")))

    # -- flights ------------------------------------------------------------------------------
    def _landing_s(self, flight: _Flight) -> float:
        return flight.started_s + self._route_m / self.config.simulation.speed_ms

    def _take_off(self, t: float) -> list[tuple[str, bytes]]:
        self._flights += 1
        flight_id = str(
            uuid.uuid5(uuid.NAMESPACE_URL, f"{self.config.serial}/{self.seed}/{self._flights}")
        )
        self._flight = _Flight(flight_id, t, t, t, t + 1.0)
        return [
            self._topology((self.aircraft_sn,), t),
            self._progress(t, self._flight, "in_progress"),
        ]

    def _land(self, t: float, flight: _Flight) -> list[tuple[str, bytes]]:
        self._flight = None
        return [self._progress(t, flight, "ok"), self._topology((), t)]

    def _position(self, t: float, flight: _Flight) -> tuple[float, float, float]:
        """(lat, lon, heading) of the aircraft ``t`` seconds after the epoch."""
        distance = (t - flight.started_s) * self.config.simulation.speed_ms
        for leg in self._legs:
            if distance <= leg.length_m:
                f = distance / leg.length_m if leg.length_m else 0.0
                return (
                    leg.start[0] + (leg.end[0] - leg.start[0]) * f,
                    leg.start[1] + (leg.end[1] - leg.start[1]) * f,
                    leg.heading_deg,
                )
            distance -= leg.length_m
        last = self._legs[-1]
        return last.end[0], last.end[1], last.heading_deg

    # -- messages -----------------------------------------------------------------------------
    def _at(self, t: float) -> datetime:
        return self.epoch + timedelta(seconds=t)

    def _send(
        self,
        topic: str,
        t: float,
        data: dict[str, object],
        method: str | None = None,
        need_reply: bool = False,
        bid: str | None = None,
    ) -> tuple[str, bytes]:
        bid = bid or str(uuid.uuid4())
        if need_reply:
            self.awaiting_reply.add(bid)
        payload = encode_envelope(
            at=self._at(t),
            data=data,
            method=method,
            gateway=self.config.serial,
            need_reply=need_reply,
            bid=bid,
        )
        return topic, payload

    def _topology(self, subs: Sequence[str], t: float) -> tuple[str, bytes]:
        devices = [
            {"sn": sn, "domain": "0", "type": 91, "sub_type": 0, "index": "A"} for sn in subs
        ]
        data = {"domain": "3", "type": 3, "sub_type": 0, "sub_devices": devices}
        return self._send(topo_topic(self.config.serial), t, data, "update_topo")

    def _dock_osd(self, t: float) -> tuple[str, bytes]:
        flying = self._flight is not None
        if not flying:
            self._battery = min(100.0, self._battery + 0.05 * OSD_DOCK_S)
        home = self.config.placement.position
        data: dict[str, object] = {
            "mode_code": 4 if flying else 0,
            "drone_in_dock": 0 if flying else 1,
            "drone_charge_state": {"capacity_percent": round(self._battery), "state": 0},
            "environment_temperature": 24.5,
            "wind_speed": 2.1,
            "latitude": home.lat if home else self.config.patrol_route[0].lat,
            "longitude": home.lon if home else self.config.patrol_route[0].lon,
        }
        return self._send(thing_topic(self.config.serial, "osd"), t, data)

    def _aircraft_osd(self, t: float, flight: _Flight) -> tuple[str, bytes]:
        self._battery = max(5.0, self._battery - 0.08 * OSD_AIRCRAFT_S)
        lat, lon, heading = self._position(t, flight)
        data = {
            "latitude": lat,
            "longitude": lon,
            "height": DOCK_GROUND_HEIGHT_M + self.config.altitude_m,
            "elevation": self.config.altitude_m,
            "attitude_head": heading if heading <= 180 else heading - 360,
            "horizontal_speed": self.config.simulation.speed_ms,
            "mode_code": 5,
            "battery": {"capacity_percent": round(self._battery)},
        }
        return self._send(thing_topic(self.aircraft_sn, "osd"), t, data)

    def _progress(self, t: float, flight: _Flight, status: str) -> tuple[str, bytes]:
        total_s = self._route_m / self.config.simulation.speed_ms
        percent = 100 if status == "ok" else min(99, int(100 * (t - flight.started_s) / total_s))
        data = {
            "result": 0,
            "output": {
                "ext": {"flight_id": flight.flight_id, "current_waypoint_index": 0},
                "progress": {"current_step": 19 if status != "ok" else 25, "percent": percent},
                "status": status,
            },
        }
        topic = thing_topic(self.config.serial, "events")
        return self._send(topic, t, data, "flighttask_progress", need_reply=True)

    def _photo(self, t: float, flight: _Flight) -> tuple[str, bytes]:
        lat, lon, yaw = self._position(t, flight)
        camera = self.config.camera
        pitch = camera.default_pitch_deg
        image, truth = self.render_view(lat, lon, yaw, pitch, seed=self.seed * 1000 + flight.photos)
        flight.photos += 1
        stamp = self._at(t).strftime("%Y%m%d%H%M%S")
        key = f"wayline/{flight.flight_id}/DJI_{stamp}_{flight.photos:04d}_W.jpeg"
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:
            raise RuntimeError("OpenCV could not encode the simulated photo")
        path = self.media_dir / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(jpeg.tobytes())
        self.photos.append(SimPhoto(key, flight.flight_id, lat, lon, yaw, truth))
        data = {
            "file": {
                "object_key": key,
                "path": f"wayline/{flight.flight_id}",
                "name": key.rsplit("/", 1)[-1],
                "ext": {
                    "flight_id": flight.flight_id,
                    "drone_model_key": "0-91-0",
                    "is_original": True,
                },
                "metadata": {
                    "gimbal_yaw_degree": str(round(yaw if yaw <= 180 else yaw - 360, 2)),
                    "gimbal_pitch_degree": pitch,
                    "absolute_altitude": DOCK_GROUND_HEIGHT_M + self.config.altitude_m,
                    "relative_altitude": self.config.altitude_m,
                    "create_time": self._at(t).isoformat().replace("+00:00", "Z"),
                    "shoot_position": {"lat": lat, "lng": lon},
                },
            },
            "result": 0,
        }
        topic = thing_topic(self.config.serial, "events")
        return self._send(topic, t, data, "file_upload_callback", need_reply=True)

    # -- the camera ---------------------------------------------------------------------------
    def render_view(
        self, lat: float, lon: float, yaw_deg: float, pitch_deg: float, seed: int
    ) -> tuple[np.ndarray, tuple[tuple[str, float, float, float, float], ...]]:
        """The photo from (lat, lon) at patrol height, and the planted objects' boxes in it."""
        camera = self.config.camera
        height = self.config.altitude_m
        w, h = camera.width_px, camera.height_px
        tan_half = math.tan(math.radians(camera.hfov_deg) / 2)
        gsd = 2 * height * tan_half / w
        half_diag = math.atan(tan_half * math.hypot(1, h / w))
        reach = height * math.tan(min(math.radians(85), half_diag + math.radians(90 + pitch_deg)))
        side_px = int(2 * reach / gsd) + 8
        objects = [_to_aerial(p, lat, lon) for p in self.config.simulation.planted]
        objects = [o for o in objects if abs(o.east_m) < reach + 10 and abs(o.north_m) < reach + 10]
        roads = [Road(_enu(lat, lon, *leg.start), _enu(lat, lon, *leg.end)) for leg in self._legs]
        patch = render_patch(
            objects, width_px=side_px, height_px=side_px, metres_per_px=gsd, roads=roads, seed=seed
        )

        def patch_px(east: float, north: float) -> tuple[float, float]:
            return side_px / 2 + east / gsd, side_px / 2 - north / gsd

        ground = [(-10.0, -10.0), (10.0, -10.0), (10.0, 10.0), (-10.0, 10.0)]
        src = np.array([patch_px(e, n) for e, n in ground], np.float32)
        dst = np.array(
            [
                ground_to_pixel(e, n, height, yaw_deg, pitch_deg, camera.hfov_deg, w, h)
                for e, n in ground
            ],
            np.float32,
        )
        homography = cv2.getPerspectiveTransform(src, dst)
        image = cv2.warpPerspective(patch.image, homography, (w, h), flags=cv2.INTER_LINEAR)
        truth = []
        for box in patch.truth:
            corners = np.array(
                [[[box.x1, box.y1]], [[box.x2, box.y1]], [[box.x2, box.y2]], [[box.x1, box.y2]]],
                np.float32,
            )
            view = cv2.perspectiveTransform(corners, homography).reshape(-1, 2)
            x1, y1 = max(0.0, float(view[:, 0].min())), max(0.0, float(view[:, 1].min()))
            x2, y2 = min(float(w), float(view[:, 0].max())), min(float(h), float(view[:, 1].max()))
            if x2 > x1 and y2 > y1:
                truth.append((box.class_name, x1, y1, x2, y2))
        return image, tuple(truth)


def ground_to_pixel(
    east_m: float,
    north_m: float,
    height_m: float,
    yaw_deg: float,
    pitch_deg: float,
    hfov_deg: float,
    width_px: int,
    height_px: int,
) -> tuple[float, float]:
    """Pixel (u right, v down) where a ground point east/north of the camera's foot appears.

    The forward half of the pinhole model whose inverse the dock agent uses (edge/geo.py):
    written separately here so that each checks the other in the tests.
    """
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    forward = np.array(
        [math.sin(yaw) * math.cos(pitch), math.cos(yaw) * math.cos(pitch), math.sin(pitch)]
    )
    right = np.array([math.cos(yaw), -math.sin(yaw), 0.0])
    down = -np.cross(right, forward)
    p = np.array([east_m, north_m, -height_m])
    z = float(p @ forward)
    if z <= 0:
        raise ValueError("the ground point is behind the camera")
    focal = (width_px / 2) / math.tan(math.radians(hfov_deg) / 2)
    return width_px / 2 + focal * float(p @ right) / z, height_px / 2 + focal * float(p @ down) / z


@dataclass(frozen=True)
class _Leg:
    start: tuple[float, float]
    end: tuple[float, float]
    length_m: float
    heading_deg: float


def _enu(lat0: float, lon0: float, lat: float, lon: float) -> tuple[float, float]:
    east = math.radians(lon - lon0) * _EARTH_M * math.cos(math.radians(lat0))
    return east, math.radians(lat - lat0) * _EARTH_M


def _legs(points: Sequence[tuple[float, float]]) -> list[_Leg]:
    legs = []
    for a, b in itertools.pairwise(points):
        east, north = _enu(a[0], a[1], b[0], b[1])
        heading = math.degrees(math.atan2(east, north)) % 360
        legs.append(_Leg(a, b, math.hypot(east, north), heading))
    return legs


def _to_aerial(obj: PlantedObject, lat: float, lon: float) -> AerialObject:
    east, north = _enu(lat, lon, obj.position.lat, obj.position.lon)
    return AerialObject(obj.kind, east, north, obj.heading_deg)


class SimulatedLink:
    """The simulated dock in-process, as a dock link (``citywatch.edge.dock.link.DockLink``)
    the dock agent reads: simulated time runs ``time_scale`` × the wall clock."""

    def __init__(
        self,
        dock: SimulatedDock,
        time_scale: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dock = dock
        self.time_scale = time_scale
        self._clock = clock
        self._started = clock()

    def _sim_s(self) -> float:
        return (self._clock() - self._started) * self.time_scale

    def poll(self, timeout_s: float) -> list[tuple[str, bytes]]:
        messages = self.dock.advance(self._sim_s())
        if not messages:
            time.sleep(timeout_s)
        return messages

    def publish(self, topic: str, payload: bytes) -> None:
        self.dock.receive(topic, payload)

    def now(self) -> datetime:
        return self.dock.epoch + timedelta(seconds=self._sim_s())

    def close(self) -> None:
        return None


def simulated_link(
    dock: DockConfig, media_dir: Path, time_scale: float, seed: int = 0
) -> SimulatedLink:
    """A simulated dock for ``dock`` writing its photos into ``media_dir``."""
    return SimulatedLink(
        SimulatedDock(dock, media_dir, epoch=datetime.now(UTC), seed=seed), time_scale
    )
