"""Offline runs of one camera's rules, for operators back-testing a change and for evaluation.

The same :class:`~citywatch.edge.camera.pipeline.CameraPipeline` the live agent runs, fed
from a recording (decoded at the camera's detection rate, through the detector) or from a
detection file (MOTChallenge rows; the rows of the frames the live agent would have
processed). Frames are timed by their number and the recording's frame rate, so the
alerts are the ones the live agent publishes for the same video and start time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from citywatch.config.camera import CameraConfig, IllegalParkingRule, SmokeRule, StreetVendingRule
from citywatch.contracts import Alert, AlertKind
from citywatch.edge.camera.evaluation.detection_file import DetectionFrame, read_detections
from citywatch.edge.camera.pipeline import CameraOutput, CameraPipeline
from citywatch.hardware.camera.frames import Frame
from citywatch.hardware.camera.video_clock import DetectionCadence
from citywatch.hardware.camera.video_source import VideoSource
from citywatch.models.detections import Detections

__all__ = ["ReplayResult", "expected_latency_s", "replay_detections", "replay_video"]


@dataclass
class ReplayResult:
    output: CameraOutput = field(default_factory=CameraOutput)
    frames: int = 0

    @property
    def alerts(self) -> list[Alert]:
        return self.output.alerts


def replay_video(pipeline: CameraPipeline, video: Path | str) -> ReplayResult:
    """Decode ``video`` at the camera's detection rate and run every due frame."""
    result = ReplayResult()
    with VideoSource(str(video), detect_fps=pipeline.camera.source.detect_fps) as source:
        for frame in source:
            result.output.extend(pipeline.process(frame))
            result.frames += 1
    result.output.extend(pipeline.finish())
    return result


def detection_frames(
    rows: list[DetectionFrame],
    *,
    video_fps: float,
    detect_fps: float,
    frame_size: tuple[int, int],
    last_frame: int | None = None,
) -> Iterator[tuple[Frame, Detections]]:
    """The frames the live agent would process (every ``video_fps / detect_fps``-th from
    frame 1, as :class:`VideoSource` picks them), each with its rows (none: empty)."""
    by_number = {row.frame: row.detections for row in rows}
    end = max([last_frame or 0, *by_number]) if by_number or last_frame else 0
    width, height = frame_size
    image = np.zeros((height, width, 3), np.uint8)  # no video: evidence shows the boxes only
    cadence = DetectionCadence(detect_fps)
    for number in range(1, end + 1):
        pts_s = (number - 1) / video_fps
        if not cadence.due(pts_s, 0.25 / video_fps):
            continue
        detections = by_number.get(number, Detections.empty())
        yield Frame(image, number - 1, pts_s), detections


def replay_detections(
    pipeline: CameraPipeline,
    path: Path | str,
    *,
    video_fps: float,
    frame_size: tuple[int, int],
    last_frame: int | None = None,
) -> ReplayResult:
    """Run the rules over a detection file (no decoding, no model)."""
    result = ReplayResult()
    rows = read_detections(path)
    for frame, detections in detection_frames(
        rows,
        video_fps=video_fps,
        detect_fps=pipeline.camera.source.detect_fps,
        frame_size=frame_size,
        last_frame=last_frame,
    ):
        result.output.extend(pipeline.process(frame, detections))
        result.frames += 1
    result.output.extend(pipeline.finish())
    return result


def expected_latency_s(camera: CameraConfig) -> dict[AlertKind, float]:
    """How long after a condition begins its alert is due, per kind: the dwell for parking
    and vending, the persistence (window × fraction) for smoke. For back-test delays."""
    latency: dict[AlertKind, float] = {}
    for rule in camera.rules:
        if isinstance(rule, IllegalParkingRule | StreetVendingRule):
            value = rule.dwell.total_seconds()
        elif isinstance(rule, SmokeRule):
            value = rule.window.total_seconds() * rule.min_fraction
        else:  # pragma: no cover - the union is closed
            continue
        kind = AlertKind(rule.type)
        latency[kind] = max(latency.get(kind, 0.0), value)
    return latency


def start_of(value: str | None, default: datetime) -> datetime:
    """``--start`` as an aware time (a naive one is taken as UTC)."""
    if value is None:
        return default
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        from datetime import UTC

        parsed = parsed.replace(tzinfo=UTC)
    return parsed
