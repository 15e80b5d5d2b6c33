"""The dock gateway agent: DJI messages in, geo-located alerts and dock telemetry out.

An I/O shell around :mod:`citywatch.edge.dock.logic`. A link delivers the dock's MQTT
messages (in-process from the simulated dock, or a subscription on the dock's broker, see
:mod:`citywatch.edge.dock.link`) and carries the replies back. On each
``file_upload_callback`` the agent reads the photo from the media folder, runs the detector,
projects the boxes to the ground and publishes the alerts through the edge session; every
failure (an undecodable message, a missing photo) is counted by name and logged, never
raised out of the loop.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from citywatch.config.dock import DockConfig
from citywatch.contracts import Alert, DeviceKind, DeviceRef, Telemetry
from citywatch.contracts.messages import EvidenceKind, EvidenceRef
from citywatch.edge.dock.logic import DockLiveness, dock_telemetry, photo_alerts
from citywatch.edge.outbox import PutResult
from citywatch.hardware.dock.dji import DjiError, MediaUploaded, decode, reply_for
from citywatch.models.aerial_classical import AerialClassicalDetector
from citywatch.models.detections import Detector, Image

__all__ = [
    "DockAgent",
    "DockAgentStats",
    "DockLink",
    "LocalMediaStore",
    "MediaMissing",
    "make_detector",
    "run_dock_agent",
]

log = logging.getLogger(__name__)


class Publisher(Protocol):
    def publish_many(self, messages: Sequence[Alert | Telemetry]) -> PutResult: ...


class DockLink(Protocol):
    """Where the dock's messages come from and its replies go."""

    def poll(self, timeout_s: float) -> list[tuple[str, bytes]]: ...

    def publish(self, topic: str, payload: bytes) -> None: ...

    def now(self) -> datetime: ...

    def close(self) -> None: ...


class MediaMissing(LookupError):
    """A photo announced by the dock is not (yet) in the media folder."""


@dataclass(frozen=True)
class LocalMediaStore:
    """Photos by object key in a folder (the simulator writes it; a sync job fills it from the
    dock's object storage in a real deployment)."""

    root: Path

    def path_of(self, object_key: str) -> Path:
        path = (self.root / object_key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise MediaMissing(f"object key {object_key!r} points outside {self.root}")
        return path

    def read(self, object_key: str) -> bytes:
        path = self.path_of(object_key)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise MediaMissing(f"photo {object_key} not in {self.root}: {exc.strerror}") from None


@dataclass
class DockAgentStats:
    messages: int = 0
    photos: int = 0
    detections: int = 0
    replies: int = 0
    telemetry: int = 0
    alerts: list[Alert] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    """Failures by name (``dji.MalformedDjiMessage``, ``media.MediaMissing``, ...)."""


def make_detector(dock: DockConfig) -> Detector:
    """The configured detector (only the weight-free one until the YOLO model exists)."""
    if dock.detection.detector == "aerial_classical":
        return AerialClassicalDetector()
    raise ValueError(f"unknown detector {dock.detection.detector!r}")


class DockAgent:
    """Handles one dock's messages; publishes through ``publisher``, replies through ``reply``."""

    def __init__(
        self,
        *,
        site: str,
        dock: DockConfig,
        detector: Detector,
        media: LocalMediaStore,
        publisher: Publisher,
        reply: Callable[[str, bytes], None],
    ) -> None:
        self.dock = dock
        self.ref = DeviceRef(site=site, kind=DeviceKind.DOCK, id=dock.id)
        self.detector = detector
        self.media = media
        self.publisher = publisher
        self.reply = reply
        self.state = DockLiveness(dock.serial, dock.osd_timeout.total_seconds())
        self.stats = DockAgentStats()
        self._next_telemetry: datetime | None = None

    def handle(self, topic: str, payload: bytes, received_at: datetime) -> None:
        """One message from the dock's broker; never raises for bad input."""
        self.stats.messages += 1
        try:
            message = decode(topic, payload, self.dock.serial)
        except DjiError as exc:
            self._count(f"dji.{type(exc).__name__}", "dropped a DJI message: %s", exc)
            return
        gateway = message.envelope.gateway
        if gateway is not None and gateway != self.dock.serial:
            return  # another dock on the same broker
        answer = reply_for(message, received_at)
        if answer is not None:
            self.reply(*answer)
            self.stats.replies += 1
        self.state.observe(message, received_at)
        if isinstance(message.value, MediaUploaded):
            when = message.value.created or message.envelope.timestamp
            self._photo(message.value, when)

    def tick(self, now: datetime) -> None:
        """Publish telemetry when due (liveness changes show up at the next one)."""
        if self._next_telemetry is not None and now < self._next_telemetry:
            return
        self._next_telemetry = now + self.dock.telemetry_interval
        self.publisher.publish_many([dock_telemetry(self.ref, self.state, now)])
        self.stats.telemetry += 1

    def _photo(self, media: MediaUploaded, event_time: datetime) -> None:
        try:
            data = self.media.read(media.object_key)
        except MediaMissing as exc:
            self._count("media.MediaMissing", "cannot analyse a photo: %s", exc)
            return
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if decoded is None:
            self._count("media.Undecodable", "photo %s is not an image", media.object_key)
            return
        image: Image = np.asarray(decoded, dtype=np.uint8)
        self.stats.photos += 1
        detections = self.detector.detect(image)
        self.stats.detections += len(detections)
        evidence = EvidenceRef(
            kind=EvidenceKind.SNAPSHOT,
            uri=self.media.path_of(media.object_key).as_uri(),
            content_type="image/jpeg",
            sha256=hashlib.sha256(data).hexdigest(),
        )
        found = photo_alerts(
            self.ref,
            media,
            detections,
            image_width_px=image.shape[1],
            image_height_px=image.shape[0],
            camera=self.dock.camera,
            detection=self.dock.detection,
            fallback_height_m=self.dock.altitude_m,
            event_time=event_time,
            evidence=evidence,
        )
        if found.alerts:
            self.publisher.publish_many(found.alerts)
            self.stats.alerts += found.alerts
            for alert in found.alerts:
                log.info(
                    "%s %s at %.6f,%.6f (%.2f) from %s",
                    self.dock.id,
                    alert.kind.value,
                    alert.location.lat,
                    alert.location.lon,
                    alert.confidence,
                    media.object_key,
                    extra={"device": self.dock.id, "alert_id": alert.id},
                )

    def _count(self, name: str, message: str, *args: object) -> None:
        self.stats.errors[name] += 1
        log.warning(message, *args, extra={"device": self.dock.id})


def run_dock_agent(
    agent: DockAgent,
    link: DockLink,
    stop: threading.Event,
    duration_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> DockAgentStats:
    """Feed the link's messages to the agent until ``stop`` or ``duration_s`` (wall seconds)."""
    started = clock()
    while not stop.is_set():
        if duration_s is not None and clock() - started >= duration_s:
            break
        for topic, payload in link.poll(0.1):
            agent.handle(topic, payload, link.now())
        agent.tick(link.now())
    return agent.stats
