"""Cameras: source, tracker, zones drawn on the image, and the operator rules evaluated per zone.

Zones are in 0–1 image coordinates by default so they survive a resolution change; pixel
zones are allowed (drawn on a snapshot) and are checked against the frame size when the
camera's rules are compiled. Every duration is timed by the video's own timestamps.
"""

from __future__ import annotations

from datetime import time, timedelta
from typing import Annotated, Literal

from pydantic import Field, model_validator

from citywatch.config.base import ConfigModel, Duration, Identifier
from citywatch.config.camera_evidence import EvidenceConfig
from citywatch.config.detector import DetectorConfig
from citywatch.config.site import Placement

Point = tuple[float, float]
"""An ``[x, y]`` vertex: 0–1 of width/height (normalized zones) or pixels (pixel zones)."""

Anchor = Literal[
    "bottom_center",
    "center",
    "top_center",
    "bottom_left",
    "bottom_right",
    "top_left",
    "top_right",
    "center_left",
    "center_right",
]
"""The point of a box that decides which zone the object is in."""


class Zone(ConfigModel):
    name: Identifier = Field(description="zone name, referenced by rules and sent with alerts")
    polygon: tuple[Point, ...] = Field(
        min_length=3, description="[x, y] vertices: 0–1 of width/height, or pixels (see units)"
    )
    units: Literal["normalized", "pixel"] = Field(
        default="normalized",
        description="normalized: 0–1 of the image (survives a resolution change); pixel: image pixels",
    )
    mask: bool = Field(
        default=False,
        description="ignore detections whose bottom centre lies inside instead of watching",
    )

    @model_validator(mode="after")
    def _polygon_fits_units(self) -> Zone:
        verify_zone_polygon(self)
        return self


class Schedule(ConfigModel):
    """When a rule is active, in the site's local time (an end before the start spans midnight)."""

    days: tuple[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ...] = Field(
        default=("mon", "tue", "wed", "thu", "fri", "sat", "sun"),
        min_length=1,
        description="weekdays on which the window opens",
    )
    start: time = Field(default=time(0, 0), description="local time the rule becomes active")
    end: time = Field(default=time(23, 59, 59), description="local time the rule stops (inclusive)")


class RuleBase(ConfigModel):
    name: Identifier = Field(description="rule name, unique per camera; sent with alerts")
    zones: tuple[Identifier, ...] = Field(min_length=1, description="zones this rule watches")
    min_confidence: float = Field(
        default=0.4, ge=0, le=1, description="smoothed detection confidence an object needs"
    )
    anchor: Anchor = Field(
        default="bottom_center", description="point of the box that decides zone membership"
    )
    min_area: float = Field(
        default=0.0, ge=0, le=1, description="smallest box area, as a fraction of the image"
    )
    max_area: float = Field(
        default=1.0, gt=0, le=1, description="largest box area, as a fraction of the image"
    )
    schedule: Schedule | None = Field(
        default=None, description="active hours and days; always active when absent"
    )
    cooldown: Duration = Field(
        default=timedelta(minutes=5),
        description="after an episode ends, the same rule and place do not start again within it",
    )
    update_every: Duration | None = Field(
        default=timedelta(minutes=5),
        description="send an update at each multiple of this duration; none: no milestone updates",
    )

    @model_validator(mode="after")
    def _area_range(self) -> RuleBase:
        verify_area_range(self)
        return self


class StationaryRule(RuleBase):
    """A rule about objects standing still: how still, for how long, and how long lost."""

    stationary_window: Duration = Field(
        default=timedelta(seconds=5),
        description="video time over which an object must stay put to count as stationary",
    )
    max_displacement: float = Field(
        default=0.15,
        gt=0,
        le=1,
        description="largest anchor movement within the window, as a fraction of the box diagonal",
    )
    lost_grace: Duration = Field(
        default=timedelta(seconds=10),
        description="how long a stationary object the tracker lost keeps its identity and dwell clock",
    )
    max_outage: Duration = Field(
        default=timedelta(minutes=2),
        ge=timedelta(0),
        title="Max outage",
        description="how long a source outage (no frames at all) may last without counting"
        " against lost_grace: a blind camera has not seen the car leave, so a car found in"
        " its place after the reconnect keeps its clock and its open episode; a longer"
        " outage counts as the car being unseen for the excess",
    )
    end_confidence: float = Field(
        default=0.25,
        ge=0,
        le=1,
        title="End confidence",
        description="an open episode ends for low confidence only when the smoothed confidence"
        " stays under this (capped at min_confidence) for end_after: a car whose confidence"
        " hovers around min_confidence is one episode (0.25 is the tracker's default floor"
        " for starting a track)",
    )
    end_after: Duration = Field(
        default=timedelta(seconds=10),
        ge=timedelta(0),
        title="End after",
        description="how long an end condition (moved, left the zone, confidence under"
        " end_confidence) must hold before the episode ends; the object still again at its"
        " place within it continues the episode and its dwell clock. Longer than"
        " stationary_window, so a shoved car has time to be judged still again",
    )


class IllegalParkingRule(StationaryRule):
    type: Literal["illegal_parking"] = Field(default="illegal_parking", description="rule type")
    classes: tuple[str, ...] = Field(
        default=("car", "truck", "bus"), min_length=1, description="vehicle classes watched"
    )
    dwell: Duration = Field(
        default=timedelta(minutes=3), description="standing time before alerting"
    )


class StreetVendingRule(StationaryRule):
    type: Literal["street_vending"] = Field(default="street_vending", description="rule type")
    classes: tuple[str, ...] = Field(
        default=("stall",), min_length=1, description="stall classes watched"
    )
    dwell: Duration = Field(
        default=timedelta(minutes=5), description="standing time before alerting"
    )
    require_person: bool = Field(
        default=False, description="alert only when a person was seen near the stall"
    )
    person_classes: tuple[str, ...] = Field(
        default=("person",), min_length=1, description="classes that count as a person"
    )
    person_distance: float = Field(
        default=1.5,
        gt=0,
        description="how near a person must stand, in stall-box widths from the box edge",
    )


class SmokeRule(RuleBase):
    type: Literal["smoke"] = Field(default="smoke", description="rule type")
    classes: tuple[str, ...] = Field(
        default=("smoke",), min_length=1, description="classes that count as smoke"
    )
    window: Duration = Field(
        default=timedelta(seconds=10), description="video time over which persistence is judged"
    )
    min_fraction: float = Field(
        default=0.6,
        gt=0,
        le=1,
        description="share of processed frames in the window with smoke; ends below half of it",
    )
    clear_after: Duration = Field(
        default=timedelta(seconds=30),
        ge=timedelta(0),
        title="Clear after",
        description="an open smoke episode ends only when no smoke was seen in the zone for"
        " this long (and the window's share is under half min_fraction): gusts that hide a"
        " fire's plume for 15 s do not end it and start it again",
    )
    confirm_with_classical: bool = Field(
        default=False, description="count only frames the classical smoke detector confirmed"
    )


CameraRule = Annotated[
    IllegalParkingRule | StreetVendingRule | SmokeRule, Field(discriminator="type")
]


class CameraSource(ConfigModel):
    url: str = Field(description="rtsp://, http(s)://, a file path, or synthetic:SCENARIO")
    detect_fps: float = Field(
        default=5, gt=0, le=60, description="frames per second run through the detector"
    )
    loop: bool = Field(
        default=False, description="files and synthetic scenes: start again at the end (demos)"
    )
    speed: float = Field(
        default=1.0,
        ge=0,
        le=100,
        description="files and synthetic scenes: playback speed, 1 = real time, 0 = as fast as"
        " the detector goes (live streams always run in real time)",
    )
    clock: Literal["wall", "recording"] = Field(
        default="wall",
        description="wall: a frame's time is when it was read; recording: a synthetic scene's"
        " own start time plus video time (evaluation of schedules, replays of a labelled scene)",
    )
    rtsp_transport: Literal["tcp", "udp"] = Field(
        default="tcp",
        title="RTSP transport",
        description="how RTP travels from an rtsp:// camera: tcp (interleaved on the RTSP"
        " connection: no packet loss, what replay of the same video sees) or udp (FFmpeg's"
        " default: lower latency, but lost packets smear and drop frames on a busy link)",
    )
    read_ahead: int = Field(
        default=2,
        ge=0,
        le=16,
        description="frames decoded ahead on a reader thread while the detector works on the"
        " current one (decoding and inference overlap); 0 decodes on the camera thread",
    )


class GroundCalibration(ConfigModel):
    """Where points of the image lie on the ground, so an alert carries the position of
    its object rather than of the camera: two cars parked 50 m apart in one view must not
    merge into one work order. At least four image points and their ground positions in
    metres east and north of the camera's ``placement.position`` (from a site plan or a
    tape), none three of them on one line."""

    image: tuple[Point, ...] = Field(
        min_length=4, description="[x, y] image points in 0–1 of width/height"
    )
    ground_m: tuple[tuple[float, float], ...] = Field(
        min_length=4, description="[east, north] metres from the camera, one per image point"
    )
    accuracy_m: float = Field(
        default=3.0, gt=0, description="how far a projected position may be off (sent with alerts)"
    )

    @model_validator(mode="after")
    def _paired(self) -> GroundCalibration:
        if len(self.image) != len(self.ground_m):
            raise ValueError(
                f"calibration needs one ground point per image point:"
                f" {len(self.image)} image, {len(self.ground_m)} ground"
            )
        return self


class TrackerConfig(ConfigModel):
    """ByteTrack settings: how long a lost track is kept and how detections are matched."""

    lost_buffer: Duration = Field(
        default=timedelta(seconds=3),
        description="video time a track survives without detections before its id is dropped",
    )
    activation_confidence: float = Field(
        default=0.25, ge=0, le=1, description="confidence a detection needs to start a new track"
    )
    high_confidence: float = Field(
        default=0.4,
        ge=0,
        le=1,
        description="detections above match first; those below only revive existing tracks",
    )
    min_iou: float = Field(
        default=0.1, gt=0, le=1, description="overlap a detection needs with a track to match it"
    )
    min_consecutive_frames: int = Field(
        default=2, ge=1, le=30, description="frames in a row before a new track gets an id"
    )


class CameraConfig(ConfigModel):
    id: Identifier = Field(description="camera id, unique in the site")
    gateway: Identifier = Field(description="the gateway that runs this camera's agent")
    name: str = Field(default="", description="display name")
    placement: Placement = Field(description="where the camera stands in the grid and on the map")
    source: CameraSource = Field(description="where frames come from and how often to detect")
    detector: DetectorConfig = Field(
        default_factory=DetectorConfig,
        description="the model that finds objects (default: the bundled synthetic-street"
        " model); one detector, as a one-element `detectors` list",
    )
    detectors: tuple[DetectorConfig, ...] = Field(
        default=(),
        description="several detectors on the same frames instead of `detector`, e.g. a COCO"
        " model for vehicles and people and a fire/smoke model: their boxes are merged per"
        " frame before tracking",
    )
    tracker: TrackerConfig = Field(
        default_factory=TrackerConfig, description="object tracker settings"
    )
    evidence: EvidenceConfig = Field(
        default_factory=EvidenceConfig, description="snapshots, crops and clips kept per alert"
    )
    calibration: GroundCalibration | None = Field(
        default=None,
        description="image → ground points; without it alerts carry the camera's position",
    )
    zones: tuple[Zone, ...] = Field(default=(), description="zones and masks drawn on the image")
    rules: tuple[CameraRule, ...] = Field(default=(), description="rules evaluated per zone")

    @property
    def detector_list(self) -> tuple[DetectorConfig, ...]:
        """The detectors this camera runs: ``detectors``, or the ``detector`` block alone."""
        return self.detectors or (self.detector,)

    @model_validator(mode="after")
    def _cross_checks(self) -> CameraConfig:
        verify_one_way_to_name_detectors(self)
        verify_rules_use_known_zones(self)
        verify_rules_do_not_watch_masks(self)
        verify_names_unique(self)
        verify_tracker_tracks_what_rules_accept(self)
        verify_detector_passes_what_rules_accept(self)
        verify_calibration_has_an_origin(self)
        return self


# Cross-checks: small named functions, each with its own test.


def verify_calibration_has_an_origin(camera: CameraConfig) -> None:
    """Calibrated ground points are metres from the camera: it needs a position."""
    if camera.calibration is not None and camera.placement.position is None:
        raise ValueError(
            f"camera {camera.id!r} has a calibration but no placement.position to measure"
            " its ground points from"
        )


def verify_zone_polygon(zone: Zone) -> None:
    """Normalized vertices lie in 0–1, pixel vertices are not negative, and the area is not 0."""
    if zone.units == "normalized":
        outside = [p for p in zone.polygon if not (0 <= p[0] <= 1 and 0 <= p[1] <= 1)]
        if outside:
            raise ValueError(
                f"zone {zone.name!r} is normalized but has vertices outside 0–1: {outside};"
                " set units: pixel for pixel coordinates"
            )
    elif any(x < 0 or y < 0 for x, y in zone.polygon):
        raise ValueError(f"zone {zone.name!r} has negative pixel coordinates")
    points = zone.polygon
    doubled_area = sum(
        x1 * y2 - x2 * y1
        for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1], strict=True)
    )
    if abs(doubled_area) < 1e-12:
        raise ValueError(
            f"zone {zone.name!r} has no area: its vertices lie on one line or cross each other"
        )


def verify_area_range(rule: RuleBase) -> None:
    """``min_area`` is below ``max_area``, or no box could ever pass."""
    if rule.min_area >= rule.max_area:
        raise ValueError(
            f"rule {rule.name!r}: min_area {rule.min_area} must be below max_area {rule.max_area}"
        )


def verify_rules_use_known_zones(camera: CameraConfig) -> None:
    """Every zone a rule names is defined on the camera."""
    known = {zone.name for zone in camera.zones}
    for rule in camera.rules:
        missing = [name for name in rule.zones if name not in known]
        if missing:
            raise ValueError(
                f"rule {rule.name!r} uses undefined zones {missing}; defined: {sorted(known)}"
            )


def verify_rules_do_not_watch_masks(camera: CameraConfig) -> None:
    """A mask hides detections, so a rule watching one could never fire."""
    masks = {zone.name for zone in camera.zones if zone.mask}
    for rule in camera.rules:
        watched = sorted(masks & set(rule.zones))
        if watched:
            raise ValueError(
                f"rule {rule.name!r} watches mask zones {watched}; a mask ignores detections,"
                " set mask: false on a zone a rule should watch"
            )


def verify_names_unique(camera: CameraConfig) -> None:
    """Zone names and rule names are unique per camera (alerts and episodes carry them)."""
    for what, names in (
        ("zone", [zone.name for zone in camera.zones]),
        ("rule", [rule.name for rule in camera.rules]),
    ):
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(
                f"camera {camera.id!r} defines {what} names more than once: {repeated}"
            )


def verify_tracker_tracks_what_rules_accept(camera: CameraConfig) -> None:
    """New tracks start only from detections above ``tracker.high_confidence``, so an
    object rule accepting less would silently never see those objects."""
    floor = camera.tracker.high_confidence
    for rule in camera.rules:
        if isinstance(rule, StationaryRule) and rule.min_confidence < floor:
            raise ValueError(
                f"rule {rule.name!r}: min_confidence {rule.min_confidence} is below"
                f" tracker.high_confidence {floor}, so objects in between never get a track;"
                " raise min_confidence or lower tracker.high_confidence"
            )


def verify_one_way_to_name_detectors(camera: CameraConfig) -> None:
    """``detector`` (one) and ``detectors`` (a list) together would leave one ignored."""
    if camera.detectors and "detector" in camera.model_fields_set:
        raise ValueError(
            f"camera {camera.id!r} sets both detector and detectors; move the detector block"
            " into the detectors list"
        )


def verify_detector_passes_what_rules_accept(camera: CameraConfig) -> None:
    """Boxes under the detector's floor for their class never leave it, so a rule accepting
    less than every one of its classes' floors would silently not do what it says. With
    several detectors the lowest floor of those that may report the class counts; a class
    every detector's ``classes`` filter drops can never reach the rule."""
    detectors = camera.detector_list
    for rule in camera.rules:
        reach = [d.reach(n) for n in rule.classes for d in detectors if d.reports(n)]
        if not reach:
            raise ValueError(
                f"rule {rule.name!r} watches {list(rule.classes)}, which no detector of camera"
                f" {camera.id!r} reports (their classes filters, or the classical detector's"
                " smoke only); add the class to a detector's classes"
            )
        floor = min(reach)
        if rule.min_confidence < floor:
            where = (
                f"detector.class_confidence {rule.classes[0]}"
                if len(rule.classes) == 1
                else "detector.class_confidence for one of its classes"
            )
            raise ValueError(
                f"rule {rule.name!r}: min_confidence {rule.min_confidence} is below the"
                f" detector's floor {floor} for {list(rule.classes)}, so boxes in between never"
                f" reach the rule; raise min_confidence or lower {where}"
            )
