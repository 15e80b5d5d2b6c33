"""The camera gateway: one thread per camera from video to published alerts.

Each camera runs :class:`~citywatch.edge.camera.pipeline.CameraPipeline` on frames from a
reconnecting source; cameras and detector entries naming the same model share one load. A
camera whose models cannot load or cannot serve its rules is refused alone (reported
offline with why) while the gateway's other cameras run, and starts once a reloaded config
makes it valid. The agent publishes through the gateway's durable outbox (alerts until
receipted), sends per-camera telemetry, and applies changed zones and rules from the config
files (checked every ``reload_check_s`` or on SIGHUP) without reopening any stream; a change
that does not validate is logged with its file, line and field, and the running rules stay.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from citywatch.config import CitywatchConfig, ConfigError, load_config
from citywatch.config.camera import CameraConfig
from citywatch.config.loader import config_files
from citywatch.contracts import Alert, DeviceKind, DeviceRef, Status, Telemetry
from citywatch.contracts.messages import DeviceState, Evidence
from citywatch.edge.camera.camera_detectors import load_camera_detectors, rule_classes
from citywatch.edge.camera.evidence import EvidenceStore
from citywatch.edge.camera.frame_prefetch import Prefetch
from citywatch.edge.camera.pipeline import CameraPipeline, ClipSettings
from citywatch.edge.camera.source import ReconnectingSource
from citywatch.edge.metrics import observe_frame
from citywatch.edge.outbox import PutResult
from citywatch.hardware.camera.frames import Frame
from citywatch.hardware.camera.video_source import VideoSource, VideoSourceError, recorded_start
from citywatch.models.detections import Detections, Detector
from citywatch.models.detector_factory import DetectorError
from citywatch.models.detector_set import ModelPool

__all__ = ["CameraGateway", "CameraStats", "Publisher", "rule_classes"]

log = logging.getLogger(__name__)


class Publisher(Protocol):
    def publish_many(
        self, messages: Sequence[Alert | Telemetry | Evidence | Status]
    ) -> PutResult: ...


@dataclass
class CameraStats:
    """Counters of one camera, read by the telemetry and the CLI summary."""

    frames: int = 0
    alerts: int = 0
    evidence: int = 0
    reloads: int = 0
    errors: int = 0
    last_error: str | None = None
    window_frames: int = 0
    window_inference_s: float = 0.0
    window_pipeline_s: float = 0.0
    window_started: float = field(default_factory=time.monotonic)
    last_frame_at: float | None = None
    finished: bool = False


def frame_start_time(camera: CameraConfig, opened_at: datetime) -> datetime:
    """Wall-clock time of video second 0: when the source opened, or with
    ``source.clock: recording`` a synthetic scene's own start time (for schedules)."""
    if camera.source.clock == "recording":
        start = recorded_start(camera.source.url)
        if start is not None:
            return start.astimezone(UTC)
    return opened_at


class CameraWorker:
    """One camera: source → pipeline → publisher, on its own thread."""

    def __init__(
        self,
        gateway: CameraGateway,
        camera: CameraConfig,
        detector: Sequence[Detector],
    ) -> None:
        self.gateway = gateway
        self.camera = camera
        self.detector = detector
        """One detector per entry of the camera's detector_list."""
        self.stats = CameraStats()
        self.source = ReconnectingSource(
            VideoSource(
                camera.source.url,
                detect_fps=camera.source.detect_fps,
                rtsp_transport=camera.source.rtsp_transport,
            ),
            camera_id=camera.id,
            stop=gateway.stop,
            loop=camera.source.loop,
            on_error=self._source_error,
        )
        self.pipeline: CameraPipeline | None = None
        self._pending: tuple[CameraConfig, Sequence[Detector]] | None = None
        self._was_dark = False
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._main, name=f"camera-{camera.id}", daemon=True)

    def reconfigure(self, camera: CameraConfig, detector: Sequence[Detector]) -> None:
        """Hand a changed config and the detector its settings call for to the camera
        thread, which applies both before its next frame."""
        with self._lock:
            self._pending = (camera, detector)

    def _source_error(self, reason: str) -> None:
        """A failed open or a lost stream: counted, and the reason the status carries."""
        self.stats.errors += 1
        self.stats.last_error = f"camera {self.camera.id}: {reason}"

    def _main(self) -> None:
        try:
            self._run()
        except VideoSourceError as exc:
            self.stats.errors += 1
            self.stats.last_error = str(exc)
            log.error("camera %s: %s", self.camera.id, exc, extra={"camera": self.camera.id})
        finally:
            if self.pipeline is not None:
                self.pipeline.close()
            self.stats.finished = True

    def _run(self) -> None:
        ahead = self.camera.source.read_ahead
        if ahead == 0:
            self._loop(self.source)
            return
        live = self.source.source.is_live  # a live camera never waits: freshest frame wins
        with Prefetch(
            self.source, depth=ahead, name=f"read-{self.camera.id}", keep_latest=live
        ) as frames:
            self._loop(frames)

    def _loop(self, frames: Iterable[Frame]) -> None:
        gateway, camera = self.gateway, self.camera
        paced_since: float | None = None
        for frame in frames:
            if self.pipeline is None:
                opened = datetime.now(UTC) - timedelta(seconds=frame.pts_s)
                self.pipeline = CameraPipeline(
                    site_id=gateway.config.site.id,
                    camera=camera,
                    tz=gateway.config.site.timezone,
                    start_time=frame_start_time(camera, opened),
                    detector=self.detector,
                    evidence=gateway.evidence_store(camera),
                    clips=ClipSettings.of(camera.evidence) if camera.evidence.clip else None,
                    on_detections=gateway.detection_hook(camera.id),
                    clip_thread=gateway.clip_thread,
                )
            self._apply_pending()
            paced_since = self._pace(frame, paced_since)
            self._process(frame)
            if gateway.stop.is_set():
                break
        if self.pipeline is not None:
            self._publish(self.pipeline.finish().messages)

    def _pace(self, frame: Frame, since: float | None) -> float:
        """Play files and scenarios at ``source.speed`` × real time (0: as fast as possible)."""
        now = time.monotonic()
        speed = self.camera.source.speed
        if self.source.source.is_live or speed <= 0:
            return now if since is None else since
        if since is None:
            return now - frame.pts_s / speed
        delay = since + frame.pts_s / speed - now
        if delay > 0:
            self.gateway.stop.wait(delay)
        return since

    def _process(self, frame: Frame) -> None:
        assert self.pipeline is not None
        before_inf, before_all = self.pipeline.stats.inference_s, self.pipeline.stats.pipeline_s
        try:
            out = self.pipeline.process(frame)
        except Exception as exc:  # one bad frame must not stop the camera
            self.stats.errors += 1
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("camera %s: frame %d failed", self.camera.id, frame.index)
            return
        stats = self.stats
        stats.frames += 1
        stats.window_frames += 1
        inference_s = self.pipeline.stats.inference_s - before_inf
        pipeline_s = self.pipeline.stats.pipeline_s - before_all
        stats.window_inference_s += inference_s
        stats.window_pipeline_s += pipeline_s
        observe_frame(inference_s, pipeline_s)
        stats.last_frame_at = time.monotonic()
        if out.alerts or out.evidence:
            self._publish(out.messages)
            stats.alerts += len(out.alerts)
            stats.evidence += len(out.evidence)
            for alert in out.alerts:
                log.info(
                    "camera %s: %s %s %s in %s (%.2f, dwell %ss)",
                    self.camera.id,
                    alert.kind.value,
                    alert.phase.value,
                    alert.attributes.get("class"),
                    alert.location.zone,
                    alert.confidence,
                    alert.dwell_s,
                    extra={"camera": self.camera.id, "alert_id": alert.id},
                )

    def _apply_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is None:
            return
        camera, self.detector = pending
        if self.pipeline is None:
            self.camera = camera
            return
        if camera.source != self.camera.source:
            log.warning(
                "camera %s: a changed source applies after a restart; the rest applies now",
                self.camera.id,
            )
        if camera.detector_list != self.camera.detector_list:
            log.info("camera %s: new detector settings applied", self.camera.id)
        out = self.pipeline.reconfigure(camera, self.detector)
        self.camera = camera
        self.stats.reloads += 1
        self._publish(out.messages)

    def _publish(self, messages: Sequence[Alert | Evidence]) -> None:
        if messages:
            self.gateway.publisher.publish_many(list(messages))

    def outage_changed(self) -> bool:
        """Whether the camera went into or out of an outage since the last call."""
        dark = self.source.in_outage
        changed = dark != self._was_dark
        self._was_dark = dark
        return changed

    def status(self) -> Status:
        """Online while it delivers; offline in an outage or once stopped, with why."""
        detail: str | None = None
        if self.source.in_outage:
            detail = f"camera {self.camera.id}: {self.source.reason or 'no video'}"
        elif self.stats.finished:
            detail = self.stats.last_error or f"camera {self.camera.id}: camera agent stopped"
        return Status(
            device=self.device,
            state=DeviceState.ONLINE if detail is None else DeviceState.OFFLINE,
            event_time=datetime.now(UTC),
            detail=detail,
        )

    @property
    def device(self) -> DeviceRef:
        return DeviceRef(
            site=self.gateway.config.site.id, kind=DeviceKind.CAMERA, id=self.camera.id
        )

    def telemetry(self, now: float) -> Telemetry:
        """fps, inference and pipeline ms, dropped frames and last-frame age since the last call."""
        stats, src = self.stats, self.source.stats
        elapsed = max(1e-6, now - stats.window_started)
        frames = stats.window_frames
        metrics = {
            "fps": frames / elapsed,
            "inference_ms": 1000 * stats.window_inference_s / frames if frames else 0.0,
            "pipeline_ms": 1000 * stats.window_pipeline_s / frames if frames else 0.0,
            "frames_read": float(src.frames_read),
            "frames_skipped": float(src.frames_skipped),
            "dropped_frames": float(max(0, src.frames_decoded - stats.frames)),
            "reconnects": float(src.reconnects),
            "frames_lost": float(src.frames_lost),
            "last_frame_age_s": now - stats.last_frame_at if stats.last_frame_at else -1.0,
            "open_episodes": float(self.pipeline.open_episodes if self.pipeline else 0),
            "clip_frames_dropped": float(self.pipeline.clip_frames_dropped if self.pipeline else 0),
            "errors": float(stats.errors),
        }
        stats.window_frames, stats.window_inference_s, stats.window_pipeline_s = 0, 0.0, 0.0
        stats.window_started = now
        return Telemetry(
            id=f"{self.camera.id}.t.{int(time.time() * 1000)}",
            device=self.device,
            event_time=datetime.now(UTC),
            metrics=metrics,
        )


class CameraGateway:
    """Every camera of one gateway, the shared models, telemetry and hot reload."""

    def __init__(
        self,
        config: CitywatchConfig,
        gateway_id: str,
        publisher: Publisher,
        *,
        config_path: Path | None = None,
        evidence_dir: Path | None = None,
        stop: threading.Event | None = None,
        telemetry_interval_s: float = 10.0,
        reload_check_s: float = 2.0,
        record_detections: Callable[[str, Frame, Detections], None] | None = None,
        clip_thread: bool = True,
    ) -> None:
        """``clip_thread``: record each camera's clips on a worker thread of its own (False:
        inline on the camera thread, as replay does; benchmarks compare the two)."""
        self.config = config
        self.gateway_id = gateway_id
        self.publisher = publisher
        self.config_path = config_path
        self.evidence_dir = evidence_dir
        self.stop = stop or threading.Event()
        self.telemetry_interval_s = telemetry_interval_s
        self.reload_check_s = reload_check_s
        self.reload_requested = threading.Event()
        self.reload_failures = 0
        self.record_detections = record_detections
        self.clip_thread = clip_thread
        self.models = ModelPool()
        cameras = [c for c in config.devices.cameras if c.gateway == gateway_id]
        if not cameras:
            raise ValueError(f"no cameras behind gateway {gateway_id!r} in the config")
        self.refused: dict[str, str] = {}
        """Camera → why it does not run (its models cannot serve its rules); retried on reload."""
        self.workers: dict[str, CameraWorker] = {}
        self.running = False
        for camera in cameras:
            self._admit(camera)
        if not self.workers:
            raise DetectorError("; ".join(self.refused.values()))
        self._watched = self._mtimes()

    def _admit(self, camera: CameraConfig) -> CameraWorker | None:
        """The camera's worker (started if the gateway runs), or None: refused alone, with why."""
        try:
            worker = CameraWorker(self, camera, load_camera_detectors(camera, self.models))
        except (DetectorError, ValueError) as exc:
            self.refused[camera.id] = f"camera {camera.id} refused: {exc}"
            log.error("%s", self.refused[camera.id], extra={"camera": camera.id})
            return None
        self.refused.pop(camera.id, None)
        self.workers[camera.id] = worker
        if self.running:
            worker.thread.start()
        return worker

    def detection_hook(self, camera_id: str) -> Callable[[Frame, Detections], None] | None:
        record = self.record_detections
        if record is None:
            return None
        return lambda frame, detections: record(camera_id, frame, detections)

    def evidence_store(self, camera: CameraConfig) -> EvidenceStore | None:
        if self.evidence_dir is None:
            return None
        return EvidenceStore(
            self.evidence_dir, camera.id, clip_format=camera.evidence.clip_format
        )

    # -- running -------------------------------------------------------------------------------
    def run(
        self, duration_s: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """Run every camera until ``stop``, ``duration_s``, or every (file) source ended."""
        self.running = True
        for worker in self.workers.values():
            worker.thread.start()
        started = clock()
        last_telemetry = started
        last_check = started
        try:
            while not self.stop.is_set():
                now = clock()
                if duration_s is not None and now - started >= duration_s:
                    break
                if all(w.stats.finished for w in self.workers.values()):
                    break
                if now - last_telemetry >= self.telemetry_interval_s:
                    self.send_telemetry(now)
                    last_telemetry = now
                self.watch_outages()
                if self.reload_requested.is_set() or now - last_check >= self.reload_check_s:
                    self.check_reload()
                    last_check = now
                self.stop.wait(0.2)
        finally:
            self.stop.set()
            for worker in self.workers.values():
                worker.thread.join(timeout=30)
            self.send_telemetry(clock())

    def send_telemetry(self, now: float) -> None:
        """Per-camera telemetry and status (online while frames arrive), and keep the
        evidence on disk within each camera's ``evidence.max_disk``."""
        messages: list[Alert | Telemetry | Evidence | Status] = [
            Status(
                device=DeviceRef(site=self.config.site.id, kind=DeviceKind.CAMERA, id=camera_id),
                state=DeviceState.OFFLINE,
                event_time=datetime.now(UTC),
                detail=reason,
            )
            for camera_id, reason in self.refused.items()
        ]
        for worker in self.workers.values():
            messages.append(worker.telemetry(now))
            messages.append(worker.status())
            store = self.evidence_store(worker.camera)
            if store is not None:
                removed = store.prune(max_bytes=worker.camera.evidence.max_disk)
                if removed:
                    log.info(
                        "camera %s: pruned %d old evidence files", worker.camera.id, len(removed)
                    )
        self.publisher.publish_many(messages)

    def watch_outages(self) -> None:
        """Announce a camera going dark or coming back as soon as it happens."""
        changed = [w.status() for w in self.workers.values() if w.outage_changed()]
        if changed:
            self.publisher.publish_many(changed)

    # -- hot reload ----------------------------------------------------------------------------
    def _mtimes(self) -> dict[Path, float]:
        if self.config_path is None:
            return {}
        stamps: dict[Path, float] = {}
        for path in config_files(self.config_path):
            try:
                stamps[path] = path.stat().st_mtime
            except OSError:
                stamps[path] = -1.0
        return stamps

    def check_reload(self) -> bool:
        """Reload when a config file changed or SIGHUP asked; True when new rules apply."""
        forced = self.reload_requested.is_set()
        self.reload_requested.clear()
        if self.config_path is None:
            return False
        stamps = self._mtimes()
        if not forced and stamps == self._watched:
            return False
        self._watched = stamps
        try:
            config = load_config(self.config_path)
        except ConfigError as exc:
            self.reload_failures += 1
            for problem in exc.problems:
                log.error("config change rejected, the running rules stay: %s", problem)
            return False
        return self.apply(config)

    def apply(self, config: CitywatchConfig) -> bool:
        """Hand each running camera its new zones, rules and detector settings (a changed
        model is loaded first: one that fails to load or cannot serve the rules refuses the
        whole change); sources restart only with us. A refused camera is tried again, and starts
        if its models now serve its rules; new or removed cameras wait for a restart."""
        cameras = {c.id: c for c in config.devices.cameras if c.gateway == self.gateway_id}
        try:
            detectors = {
                camera_id: load_camera_detectors(camera, self.models)
                for camera_id, camera in cameras.items()
                if camera_id in self.workers
            }
        except (DetectorError, ValueError) as exc:
            self.reload_failures += 1
            log.error("config change rejected, the running rules stay: %s", exc)
            return False
        self.models.keep_only([d for c in cameras.values() for d in c.detector_list])
        self.refused = {c: why for c, why in self.refused.items() if c in cameras}
        for camera_id in sorted(self.refused):
            worker = self._admit(cameras[camera_id])
            if worker is not None:
                log.info("camera %s: its models now serve its rules, started", camera_id)
                self.publisher.publish_many([worker.status()])
        added = sorted(set(cameras) - set(self.workers) - set(self.refused))
        removed = sorted(set(self.workers) - set(cameras))
        if added or removed:
            log.warning(
                "cameras added %s / removed %s take effect when the agent restarts", added, removed
            )
        for camera_id, worker in self.workers.items():
            if camera_id in detectors and cameras[camera_id] != worker.camera:
                worker.reconfigure(cameras[camera_id], detectors[camera_id])
                log.info("camera %s: new zones and rules applied", camera_id)
        self.config = config
        return True
