"""The evaluation suite: rendered scenarios with labelled events, run through the live
camera agent and through ``replay --detections``, scored event by event.

Every camera of the suite config whose source is ``synthetic:NAME`` is one case; the
scenario's ``expect`` list is the truth. The live run is the real agent path (source at
the detection rate → detector → tracker → rules → publisher), played as fast as the
detector goes; it also records each camera's detections, which the replay run reads back
as a MOTChallenge file, so both paths see the same boxes.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from citywatch.config import CitywatchConfig
from citywatch.config.camera import CameraConfig
from citywatch.contracts import Alert, Status, Telemetry
from citywatch.contracts.messages import Evidence
from citywatch.edge.camera.agent import CameraGateway
from citywatch.edge.camera.evaluation.backtest import BacktestReport, score
from citywatch.edge.camera.evaluation.detection_file import write_detections
from citywatch.edge.camera.evaluation.replay import expected_latency_s, replay_detections
from citywatch.edge.camera.evaluation.truth_file import TruthEvent, parse_truth
from citywatch.edge.camera.pipeline import CameraPipeline
from citywatch.edge.outbox import PutResult
from citywatch.hardware.camera.frames import Frame
from citywatch.hardware.camera.street.scenario import Scenario, ScenarioPlayer, load_scenario
from citywatch.hardware.camera.video_clock import DetectionCadence
from citywatch.models.detections import Detections

__all__ = ["SuiteCase", "SuiteRun", "run_live", "run_replay", "suite_cases"]

SCHEME = "synthetic:"


@dataclass(frozen=True)
class SuiteCase:
    camera: CameraConfig
    scenario: Scenario

    @property
    def truth(self) -> list[TruthEvent]:
        import json

        lines = [json.dumps(e.record()) for e in self.scenario.expect]
        return parse_truth(lines, source=f"{self.scenario.name} expect")


@dataclass
class SuiteRun:
    """Alerts and recorded detections per camera, and the scores."""

    alerts: dict[str, list[Alert]] = field(default_factory=lambda: defaultdict(list))
    detections: dict[str, list[tuple[int, Detections, None]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    reports: list[BacktestReport] = field(default_factory=list)


def suite_cases(config: CitywatchConfig, only: Sequence[str] = ()) -> list[SuiteCase]:
    """The synthetic cameras of ``config`` (optionally only the named scenarios)."""
    cases = []
    for camera in config.devices.cameras:
        if not camera.source.url.startswith(SCHEME):
            continue
        scenario = load_scenario(camera.source.url.removeprefix(SCHEME))
        if only and scenario.name not in only:
            continue
        cases.append(SuiteCase(camera, scenario))
    return cases


def as_fast_as_possible(camera: CameraConfig) -> CameraConfig:
    """The camera with its scenario played as fast as the detector goes, once."""
    source = camera.source.model_copy(update={"speed": 0.0, "loop": False, "clock": "recording"})
    return camera.model_copy(update={"source": source})


class _Collector:
    """A publisher that keeps what the agent sends (the suite scores, nothing to ship)."""

    def __init__(self, run: SuiteRun) -> None:
        self.run = run
        self._lock = threading.Lock()

    def publish_many(self, messages: Sequence[Alert | Telemetry | Evidence | Status]) -> PutResult:
        with self._lock:
            for message in messages:
                if isinstance(message, Alert):
                    self.run.alerts[message.device.id].append(message)
        return PutResult(stored=len(messages), duplicates=0, shed=0, refused=())


def video_start(alerts: Sequence[Alert], fallback: datetime) -> datetime:
    """Wall-clock time of the video's second 0, from any alert's time and video time."""
    for alert in alerts:
        pts = alert.attributes.get("pts_s")
        if isinstance(pts, int | float):
            return alert.event_time - timedelta(seconds=float(pts))
    return fallback


def frames_due(case: SuiteCase) -> int:
    """How many frames the agent detects on over the case's scene (for a progress count)."""
    return round(case.scenario.duration_s * case.camera.source.detect_fps)


def run_live(
    config: CitywatchConfig,
    cases: Sequence[SuiteCase],
    evidence_dir: Path | None = None,
    on_frame: Callable[[], None] | None = None,
) -> SuiteRun:
    """Run every case's camera through the camera agent at once (one thread per camera);
    ``on_frame`` is called (from the camera threads) after each detected frame."""
    wanted = {c.camera.id for c in cases}
    gateway_ids = {c.camera.gateway for c in cases}
    if len(gateway_ids) != 1:
        raise ValueError(f"suite cameras must share one gateway, found {sorted(gateway_ids)}")
    cameras = tuple(
        as_fast_as_possible(c) if c.id in wanted else c
        for c in config.devices.cameras
        if c.id in wanted
    )
    devices = config.devices.model_copy(update={"cameras": cameras})
    fast = config.model_copy(update={"devices": devices})
    run = SuiteRun()
    lock = threading.Lock()

    def record(camera_id: str, frame: Frame, detections: Detections) -> None:
        with lock:
            run.detections[camera_id].append((frame.index + 1, detections, None))
        if on_frame is not None:
            on_frame()

    agent = CameraGateway(
        fast,
        gateway_ids.pop(),
        _Collector(run),
        evidence_dir=evidence_dir,
        telemetry_interval_s=3600,
        record_detections=record,
    )
    agent.run()
    for case in cases:
        run.reports.append(_score(case, run.alerts[case.camera.id]))
    return run


def run_replay(
    config: CitywatchConfig,
    cases: Sequence[SuiteCase],
    live: SuiteRun,
    work_dir: Path,
    on_case: Callable[[], None] | None = None,
) -> SuiteRun:
    """Replay each case from the detections ``live`` recorded, written as files (a live
    run's, or :func:`truth_detections`'s), with the live run's start times; ``on_case`` is
    called after each."""
    run = SuiteRun()
    work_dir.mkdir(parents=True, exist_ok=True)
    for case in cases:
        camera = case.camera
        path = work_dir / f"{case.scenario.name}.det.csv"
        write_detections(path, live.detections[camera.id])
        start = case.scenario.start_time or video_start(live.alerts[camera.id], _EPOCH)
        pipeline = CameraPipeline(
            site_id=config.site.id, camera=camera, tz=config.site.timezone, start_time=start
        )
        result = replay_detections(
            pipeline,
            path,
            video_fps=case.scenario.fps,
            frame_size=case.scenario.size,
            last_frame=round(case.scenario.duration_s * case.scenario.fps),
        )
        run.alerts[camera.id] = result.alerts
        run.reports.append(_score(case, result.alerts, start))
        if on_case is not None:
            on_case()
    return run


_EPOCH = datetime.fromisoformat("2026-01-01T00:00:00+00:00")


def truth_detections(
    scenario: Scenario, detect_fps: float, min_visibility: float = 0.3, confidence: float = 0.9
) -> list[tuple[int, Detections, None]]:
    """A perfect detector's rows for ``scenario`` at the detection rate: the renderer's own
    boxes of what is visible. Separates the rules from the model when a scene fails."""
    player = ScenarioPlayer(scenario)
    cadence = DetectionCadence(detect_fps)
    rows: list[tuple[int, Detections, None]] = []
    for index in range(player.frame_count):
        pts_s = index / scenario.fps
        if not cadence.due(pts_s, 0.25 / scenario.fps):
            continue
        _, boxes = player.frame_at(pts_s)
        seen = [b for b in boxes if b.visibility >= min_visibility]
        rows.append(
            (
                index + 1,
                Detections(
                    np.array([b.xyxy for b in seen], np.float32).reshape(-1, 4),
                    np.full(len(seen), confidence, np.float32),
                    tuple(b.class_name for b in seen),
                ),
                None,
            )
        )
    return rows


def _score(
    case: SuiteCase, alerts: Sequence[Alert], start: datetime | None = None
) -> BacktestReport:
    begin = start or case.scenario.start_time or video_start(alerts, _EPOCH)
    return score(
        alerts,
        case.truth,
        video_start=begin,
        latency_s=expected_latency_s(case.camera),
        scenario=case.scenario.name,
    )
