"""One camera's path from a frame to the messages it causes, shared by the live agent and
``citywatch edge replay``.

frame → detectors, their boxes merged (or rows of a detection file, their class names
mapped as a live detector maps them) → optional classical smoke opinion → rule engine (tracking, zones, dwell, persistence) → alert messages, with evidence written at the
start of each episode. The wall-clock time of a frame is ``start_time + pts_s``: the live
agent sets ``start_time`` when the source opens, replay takes it from ``--start``; that is
why a replay of a recording yields exactly the alerts the live agent published.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import cv2
import numpy as np

from citywatch.config.camera import CameraConfig, SmokeRule
from citywatch.config.camera_evidence import EvidenceConfig
from citywatch.config.detector import DetectorConfig, SmokeOpinionConfig, canonical_class
from citywatch.contracts import Alert, DeviceKind, DeviceRef
from citywatch.contracts.messages import Evidence, EvidenceRef, Phase
from citywatch.edge.camera.alerts import alert_for, episode_id
from citywatch.edge.camera.annotate import annotate, evidence_label, zone_overlays
from citywatch.edge.camera.clip_worker import ClipWorker
from citywatch.edge.camera.clips import ClipReady, ClipRecorder
from citywatch.edge.camera.episodes import RuleEvent
from citywatch.edge.camera.evidence import EvidenceStore
from citywatch.edge.camera.frame_ring import FrameRing
from citywatch.edge.camera.ground import GroundProjection
from citywatch.edge.camera.rules import CameraRules
from citywatch.hardware.camera.frames import Frame
from citywatch.hardware.camera.video_clock import DetectionCadence
from citywatch.models.detections import Detections, Detector
from citywatch.models.detector_set import combine
from citywatch.models.smoke_change import corroborated
from citywatch.models.smoke_classical import ClassicalSmokeDetector

__all__ = ["CameraOutput", "CameraPipeline", "PipelineStats"]

log = logging.getLogger(__name__)

SMOKE = "smoke"


@dataclass
class CameraOutput:
    """What one step produced: alerts (QoS 1, until receipted) and evidence notices."""

    alerts: list[Alert] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)

    def extend(self, other: CameraOutput) -> None:
        self.alerts += other.alerts
        self.evidence += other.evidence

    @property
    def messages(self) -> list[Alert | Evidence]:
        return [*self.alerts, *self.evidence]


@dataclass
class PipelineStats:
    frames: int = 0
    detections: int = 0
    alerts: int = 0
    inference_s: float = 0.0
    pipeline_s: float = 0.0


@dataclass(frozen=True)
class ClipSettings:
    """A clip from ``before_s`` before an episode starts to ``after_s`` after."""

    before_s: float = 4.0
    after_s: float = 4.0
    width_px: int = 640
    """Frames are kept (JPEG) at this width: a clip illustrates, the snapshot is full size."""
    fps: float = 5.0
    """Frames kept per second: encoding every detected frame would cost the detector time."""

    @classmethod
    def of(cls, config: EvidenceConfig) -> ClipSettings:
        return cls(
            config.clip_before.total_seconds(),
            config.clip_after.total_seconds(),
            config.clip_width_px,
            config.clip_fps,
        )


class CameraPipeline:
    """Frames in, messages out, for one camera. Not thread-safe: one per camera thread."""

    def __init__(
        self,
        *,
        site_id: str,
        camera: CameraConfig,
        tz: str,
        start_time: datetime,
        detector: Detector | Sequence[Detector] | None = None,
        evidence: EvidenceStore | None = None,
        clips: ClipSettings | None = None,
        on_detections: Callable[[Frame, Detections], None] | None = None,
        clip_thread: bool = False,
    ) -> None:
        """``clip_thread``: record clips on a worker thread (the live agent: the camera
        thread only downscales and queues, a slow worker drops ring frames); without it
        clips are recorded inline, deterministically (replay, tests). ``detector``: one per
        entry of the camera's ``detector_list`` (a lone detector for a lone entry), possibly
        shared with other cameras; this camera's cues and cadence wrap them."""
        if start_time.tzinfo is None:
            raise ValueError("start_time must be timezone-aware")
        self.site_id = site_id
        self.camera = camera
        self.tz = tz
        self.start_time = start_time
        self._entries: list[tuple[DetectorConfig, Detector, Detector]] = []
        """Per detector entry: its settings, the (shared) detector, and this camera's view."""
        self.detector: Detector | None = None
        self.detector = self._wrap(camera, _entries_of(detector))
        """This camera's detector: the (possibly shared) models, with weak smoke boxes
        corroborated where an entry asks, each at its cadence, their boxes merged."""
        self.evidence = evidence
        self.clip_settings = clips
        self.on_detections = on_detections
        """Sees every frame's detections: how a run is recorded as a detection file."""
        self.stats = PipelineStats()
        self._rules: CameraRules | None = None
        opinion = self._opinion_config(camera)
        self._smoke_opinion = ClassicalSmokeDetector(opinion) if opinion is not None else None
        self._ground = self._ground_for(camera)
        self._clips: ClipRecorder | ClipWorker | None = None
        self._clip_ids: dict[str, str] = {}
        """Clip name → the alert id it illustrates (for the Evidence notice)."""
        self._triggered: list[ClipReady] = []
        """Clips a trigger finished (this one, or the oldest of too many pending)."""
        self._last_frame: Frame | None = None
        self._best: dict[str, float] = {}
        """Episode → confidence of its last snapshot (a better frame replaces it)."""
        self._clip_cadence = DetectionCadence(clips.fps if clips else None)
        if evidence is not None and clips is not None:
            recorder = ClipRecorder(
                evidence,
                before_s=clips.before_s,
                after_s=clips.after_s,
                ring=FrameRing(max_age_s=clips.before_s + 1.0, max_frames=256),
            )
            self._clips = (
                ClipWorker(recorder, name=f"clips-{camera.id}") if clip_thread else recorder
            )

    # -- time ----------------------------------------------------------------------------------
    def wall_time(self, pts_s: float) -> datetime:
        """The aware UTC time of the frame at ``pts_s`` (video seconds)."""
        return self.start_time + timedelta(seconds=pts_s)

    @property
    def device(self) -> DeviceRef:
        return DeviceRef(site=self.site_id, kind=DeviceKind.CAMERA, id=self.camera.id)

    @property
    def clip_frames_dropped(self) -> int:
        """Ring frames the clip worker dropped because it was behind."""
        return self._clips.frames_dropped if isinstance(self._clips, ClipWorker) else 0

    @property
    def classical_smoke(self) -> SmokeOpinionConfig | None:
        """The thresholds the classical second opinion runs with; None when no rule asks."""
        return self._smoke_opinion.config if self._smoke_opinion is not None else None

    @property
    def open_episodes(self) -> int:
        return len(self._rules.open_episodes) if self._rules is not None else 0

    # -- processing ----------------------------------------------------------------------------
    def process(self, frame: Frame, detections: Detections | None = None) -> CameraOutput:
        """Evaluate one frame; ``detections`` given (replay of a detection file) skip the
        detector."""
        begun = time.perf_counter()
        if detections is None:
            if self.detector is None:
                raise ValueError(f"camera {self.camera.id}: no detector and no detections")
            detections = self.detector.detect(frame.image)
            self.stats.inference_s += time.perf_counter() - begun
        else:
            detections = self._mapped(detections)
        if self.on_detections is not None:
            self.on_detections(frame, detections)
        rules = self._rules_for(frame)
        smoke_confirmed = self._smoke_confirmed(frame, detections)
        events = rules.step(frame.pts_s, self.wall_time(frame.pts_s), detections, smoke_confirmed)
        out = self._emit(events, frame)
        if self._clips is not None and self._clip_cadence.due(frame.pts_s, 1e-3):
            out.extend(self._clip_notices(self._clips.push(self._clip_frame(frame))))
        elif isinstance(self._clips, ClipWorker):
            out.extend(self._clip_notices(self._clips.ready()))
        self._last_frame = frame
        self.stats.frames += 1
        self.stats.detections += len(detections)
        self.stats.pipeline_s += time.perf_counter() - begun
        return out

    def finish(self) -> CameraOutput:
        """End every open episode and finish pending clips (the stream ended)."""
        out = CameraOutput()
        if self._rules is not None and self._last_frame is not None:
            pts = self._last_frame.pts_s
            out = self._emit(self._rules.flush(pts, self.wall_time(pts)), self._last_frame)
        if self._clips is not None:
            out.extend(self._clip_notices(self._clips.flush()))
        return out

    def close(self) -> None:
        """Stop the clip worker, if any (after :meth:`finish`, or to abandon its work)."""
        if isinstance(self._clips, ClipWorker):
            self._clips.close()

    def reconfigure(
        self, camera: CameraConfig, detector: Detector | Sequence[Detector] | None = None
    ) -> CameraOutput:
        """Apply changed zones, rules and detector settings without losing the objects'
        dwell clocks; ``detector``: the models the new settings call for (default: those in
        use). The same model under the same settings keeps this camera's smoke cue."""
        if camera.id != self.camera.id:
            raise ValueError(f"cannot reconfigure camera {self.camera.id} as {camera.id}")
        given = _entries_of(detector) or tuple(base for _, base, _ in self._entries)
        self.detector = self._wrap(camera, given)
        self.camera = camera
        self._ground = self._ground_for(camera)
        wanted = self._opinion_config(camera)
        if wanted != self.classical_smoke:  # new thresholds: learn the background afresh
            self._smoke_opinion = ClassicalSmokeDetector(wanted) if wanted is not None else None
        if self._rules is None or self._last_frame is None:
            self._rules = None
            return CameraOutput()
        return self._emit(self._rules.update_config(camera), self._last_frame)

    # -- internals -----------------------------------------------------------------------------
    def _wrap(self, camera: CameraConfig, bases: tuple[Detector, ...]) -> Detector | None:
        """This camera's view of ``bases``: an entry whose detector and settings did not
        change keeps its view (and the state of its smoke cue and cadence)."""
        if not bases:
            self._entries = []
            return None
        configs = camera.detector_list
        if len(bases) != len(configs):
            raise ValueError(
                f"camera {camera.id}: {len(configs)} detector entries, {len(bases)} detectors"
            )
        entries = []
        for config, base in zip(configs, bases, strict=True):
            kept = [w for c, b, w in self._entries if b is base and c == config]
            entries.append((config, base, kept[0] if kept else corroborated(base, config)))
        unchanged = len(entries) == len(self._entries) and all(
            new[2] is old[2] for new, old in zip(entries, self._entries, strict=True)
        )
        self._entries = entries
        if unchanged and self.detector is not None:
            return self.detector
        return combine([(config, view) for config, _, view in entries])

    def _mapped(self, detections: Detections) -> Detections:
        """A detection file's class names as this camera's detectors report them (its
        class maps; other names in lower case), so replay compares as the live agent."""
        class_map: dict[str, str] = {}
        for config in self.camera.detector_list:
            class_map.update(config.class_map)
        names = tuple(canonical_class(n, class_map) for n in detections.class_name)
        if names == detections.class_name:
            return detections
        return Detections(detections.xyxy, detections.confidence, names)

    def _rules_for(self, frame: Frame) -> CameraRules:
        if self._rules is None:
            self._rules = CameraRules(self.camera, frame.width, frame.height, self.tz)
        return self._rules

    @staticmethod
    def _ground_for(camera: CameraConfig) -> GroundProjection | None:
        position = camera.placement.position
        if camera.calibration is None or position is None:
            return None
        return GroundProjection(camera.calibration, position.lat, position.lon)

    @staticmethod
    def _opinion_config(camera: CameraConfig) -> SmokeOpinionConfig | None:
        """The classical detector's thresholds, if a smoke rule asks it for a second opinion."""
        wanted = any(isinstance(r, SmokeRule) and r.confirm_with_classical for r in camera.rules)
        if not wanted:
            return None
        entries = camera.detector_list
        chosen = next((d for d in entries if d.backend == "classical"), entries[0])
        return chosen.classical_smoke

    def _smoke_confirmed(self, frame: Frame, detections: Detections) -> bool | None:
        if self._smoke_opinion is None:
            return None
        names = detections.class_name
        smoke = detections.where(np.array([n.lower() == SMOKE for n in names], np.bool_))
        return bool(self._smoke_opinion.opinion(frame.image, smoke).any())

    def _emit(self, events: list[RuleEvent], frame: Frame) -> CameraOutput:
        out = CameraOutput()
        for event in events:
            refs = self._evidence_for(event, frame)
            alert = alert_for(
                event, site=self.site_id, camera=self.camera, evidence=refs, ground=self._ground
            )
            out.alerts.append(alert)
            if event.phase is Phase.END:
                self._best.pop(alert.episode_id, None)
        self.stats.alerts += len(out.alerts)
        if self._triggered:
            ready, self._triggered = self._triggered, []
            out.extend(self._clip_notices(ready))
        return out

    def _evidence_for(self, event: RuleEvent, frame: Frame) -> tuple[EvidenceRef, ...]:
        """Snapshot, crop and clean frame (unless ``evidence.frame`` is off) at the start
        (and when a clearly better frame comes along); the clip is announced by an
        :class:`Evidence` message once it is written."""
        store = self.evidence
        if store is None or event.phase is Phase.END:
            return ()
        episode = episode_id(self.camera.id, event)
        best = self._best.get(episode)
        if event.phase is Phase.UPDATE and (best is None or event.confidence < best + 0.1):
            return ()
        self._best[episode] = event.confidence
        name = f"{episode}.{event.seq}"
        zones = zone_overlays(
            [z for z in self.camera.zones if z.name == event.zone or z.mask],
            frame.width,
            frame.height,
        )
        label = evidence_label(event.class_name, event.confidence, event.dwell_s)
        try:
            snapshot = store.write_snapshot(
                name, event.time, annotate(frame.image, zones, event.xyxy, label)
            )
            crop = store.write_crop(name, event.time, frame.image, event.xyxy)
            clean = (
                store.write_frame(name, event.time, frame.image)
                if self.camera.evidence.frame
                else None
            )
        except OSError as exc:
            log.error(
                "camera %s: cannot write evidence for %s: %s (the alert goes without it)",
                self.camera.id,
                name,
                exc,
                extra={"camera": self.camera.id, "alert_id": name},
            )
            return ()
        refs = [snapshot, crop] if clean is None else [snapshot, crop, clean]
        if event.phase is Phase.START and self._clips is not None:
            self._clip_ids[name] = name
            self._triggered += self._clips.trigger(name, event.pts_s, event.time)
        return tuple(refs)

    def _clip_frame(self, frame: Frame) -> Frame:
        """The frame at the clip's width; for the worker always a new image, since it may
        encode the frame after the source has reused its buffer."""
        settings = self.clip_settings
        if settings is None or frame.width <= settings.width_px:
            if isinstance(self._clips, ClipWorker):
                return Frame(frame.image.copy(), frame.index, frame.pts_s)
            return frame
        scale = settings.width_px / frame.width
        small = cv2.resize(
            frame.image,
            (settings.width_px, round(frame.height * scale)),
            interpolation=cv2.INTER_AREA,
        )
        return Frame(np.asarray(small, dtype=np.uint8), frame.index, frame.pts_s)

    def _clip_notices(self, ready: list[ClipReady]) -> CameraOutput:
        out = CameraOutput()
        for clip in ready:
            alert_id = self._clip_ids.pop(clip.name, clip.name)
            out.evidence.append(
                Evidence(
                    id=f"{alert_id}.clip",
                    device=self.device,
                    alert_id=alert_id,
                    ref=clip.ref,
                    event_time=self.wall_time(clip.end_s),
                )
            )
        return out


def _entries_of(detector: Detector | Sequence[Detector] | None) -> tuple[Detector, ...]:
    if detector is None:
        return ()
    if isinstance(detector, Sequence):
        return tuple(detector)
    return (detector,)
