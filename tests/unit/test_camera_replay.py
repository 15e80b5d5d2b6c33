"""`citywatch edge replay`: the live camera path, offline, for back-testing rule changes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import cv2
import pytest
from typer.testing import CliRunner

from citywatch.cli.main import app
from citywatch.config import load_config
from citywatch.config.detector import SmokeOpinionConfig
from citywatch.contracts import AlertKind, decode
from citywatch.contracts.messages import EvidenceKind
from citywatch.edge.camera.evaluation.detection_file import DetectionFrame, write_detections
from citywatch.edge.camera.evaluation.replay import (
    detection_frames,
    expected_latency_s,
    replay_detections,
)
from citywatch.edge.camera.evaluation.scenario_suite import suite_cases, truth_detections
from citywatch.edge.camera.evidence import EvidenceStore
from citywatch.edge.camera.pipeline import CameraPipeline, ClipSettings
from citywatch.hardware.camera.video_clock import DetectionCadence
from citywatch.models.detections import Detections
from citywatch.models.smoke_change import SmokeCorroboration
from tests.conftest import REPO

SUITE = REPO / "configs" / "scenario-suite.yaml"
runner = CliRunner()


@pytest.fixture(scope="module")
def parked_car_rows(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A perfect detector's rows for the parked-car scene, and the scene's truth file."""
    config = load_config(SUITE)
    case = next(c for c in suite_cases(config) if c.scenario.name == "parked-car")
    out = tmp_path_factory.mktemp("parked-car")
    rows = out / "parked-car.det.csv"
    write_detections(rows, truth_detections(case.scenario, case.camera.source.detect_fps))
    truth = out / "parked-car.truth.jsonl"
    truth.write_text("".join(json.dumps(e.record()) + "\n" for e in case.scenario.expect))
    return rows, truth


def test_detection_frames_follow_the_live_cadence() -> None:
    """5 fps of a 25 fps recording: frames 1, 6, 11 … like the live source picks them."""
    rows = [DetectionFrame(11, Detections.empty(), None)]
    frames = list(
        detection_frames(rows, video_fps=25, detect_fps=5, frame_size=(64, 48), last_frame=25)
    )
    assert [f.index + 1 for f, _ in frames] == [1, 6, 11, 16, 21]
    assert [round(f.pts_s, 2) for f, _ in frames] == [0.0, 0.2, 0.4, 0.6, 0.8]
    cadence = DetectionCadence(5)
    assert [i for i in range(25) if cadence.due(i / 25, 0.01)] == [0, 5, 10, 15, 20]


def test_expected_latency_is_the_dwell_or_the_persistence() -> None:
    camera = load_config(SUITE).devices.cameras[0]
    latency = expected_latency_s(camera)
    assert latency[AlertKind.ILLEGAL_PARKING] == 20
    assert latency[AlertKind.STREET_VENDING] == 30
    assert latency[AlertKind.SMOKE] == pytest.approx(3.0)


@pytest.mark.slow
def test_replay_of_a_detection_file_writes_one_episode_and_scores_it(
    parked_car_rows: tuple[Path, Path], tmp_path: Path
) -> None:
    rows, truth = parked_car_rows
    out = tmp_path / "alerts.jsonl"
    report = tmp_path / "report.json"
    result = runner.invoke(
        app,
        ["edge", "replay", "--config", str(SUITE), "--camera", "cam-parked-car",
         "--detections", str(rows), "--start", "2026-05-12T10:00:00+08:00",
         "--out", str(out), "--truth", str(truth), "--report", str(report),
         "--min-precision", "1", "--min-recall", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    alerts = [decode(line) for line in out.read_bytes().splitlines()]
    starts = [a for a in alerts if a.phase.value == "start"]
    assert len(starts) == 1 and starts[0].kind is AlertKind.ILLEGAL_PARKING
    assert starts[0].event_time > datetime(2026, 5, 12, 2, 0, 20, tzinfo=UTC)
    scored = json.loads(report.read_text())
    assert scored["total"]["tp"] == 1 and scored["total"]["fp"] == 0


@pytest.mark.slow
def test_replay_at_night_outside_the_schedule_raises_nothing(
    parked_car_rows: tuple[Path, Path], tmp_path: Path
) -> None:
    """The same recording replayed as if filmed at 23:30 local: the rule sleeps."""
    rows, _ = parked_car_rows
    out = tmp_path / "alerts.jsonl"
    result = runner.invoke(
        app,
        ["edge", "replay", "--config", str(SUITE), "--camera", "cam-parked-car",
         "--detections", str(rows), "--start", "2026-05-12T23:30:00+08:00", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == b""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--video", "/nonexistent/clip.mp4"], "clip.mp4"),
        ([], "exactly one of --video and --detections"),
    ],
)
def test_replay_input_errors_are_clear(args: list[str], message: str, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["edge", "replay", "--config", str(SUITE), "--camera", "cam-parked-car",
         "--out", str(tmp_path / "a.jsonl"), *args],
    )  # fmt: skip
    assert result.exit_code == 2
    assert message in result.output


def test_replay_of_a_truncated_video_names_the_problem(tmp_path: Path) -> None:
    broken = tmp_path / "cut.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    result = runner.invoke(
        app,
        ["edge", "replay", "--config", str(SUITE), "--camera", "cam-parked-car",
         "--video", str(broken), "--out", str(tmp_path / "a.jsonl")],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "cut.mp4" in result.output


@pytest.mark.slow
@pytest.mark.parametrize("clip_thread", [False, True], ids=["inline", "worker"])
def test_an_episode_start_carries_snapshot_and_crop_and_its_clip_follows(
    parked_car_rows: tuple[Path, Path], tmp_path: Path, clip_thread: bool
) -> None:
    """Inline (replay) or on the clip worker (the live agent): the same evidence."""

    config = load_config(SUITE)
    camera = next(c for c in config.devices.cameras if c.id == "cam-parked-car")
    pipeline = CameraPipeline(
        site_id=config.site.id,
        camera=camera,
        tz=config.site.timezone,
        start_time=datetime(2026, 5, 12, 2, 0, tzinfo=UTC),
        evidence=EvidenceStore(tmp_path / "evidence", camera.id),
        clips=ClipSettings(before_s=3, after_s=3, width_px=320, fps=5),
        clip_thread=clip_thread,
    )
    result = replay_detections(pipeline, parked_car_rows[0], video_fps=25, frame_size=(1280, 720))
    pipeline.close()
    start = next(a for a in result.alerts if a.phase.value == "start")
    kinds = {ref.kind for ref in start.evidence}
    assert kinds == {EvidenceKind.SNAPSHOT, EvidenceKind.CROP, EvidenceKind.FRAME}
    for ref in start.evidence:
        path = Path(ref.uri.removeprefix("file://"))
        assert path.stat().st_size > 0 and ref.sha256 is not None
    clips = [e for e in result.output.evidence if e.alert_id == start.id]
    assert len(clips) == 1 and clips[0].ref.kind is EvidenceKind.CLIP
    video = cv2.VideoCapture(clips[0].ref.uri.removeprefix("file://"))
    frames = int(video.get(cv2.CAP_PROP_FRAME_COUNT))
    video.release()
    # 3 s before + 3 s after at 5 fps, less what a worker behind this fast loop dropped
    assert 25 - pipeline.clip_frames_dropped <= frames <= 35


def test_the_classical_second_opinion_runs_with_the_cameras_thresholds() -> None:
    """`detector.classical_smoke` reaches the detector a smoke rule asks for a second opinion;
    changed thresholds replace it, and no rule asking for one means none runs."""
    config = load_config(SUITE)
    camera = next(c for c in config.devices.cameras if c.id == "cam-smoke-plume")
    confirm = tuple(
        r.model_copy(update={"confirm_with_classical": True}) if r.type == "smoke" else r
        for r in camera.rules
    )
    dark = camera.detector.model_copy(
        update={"classical_smoke": SmokeOpinionConfig(dark_smoke=True, diff_threshold=8)}
    )
    pipeline = CameraPipeline(
        site_id=config.site.id,
        camera=camera.model_copy(update={"rules": confirm, "detector": dark}),
        tz=config.site.timezone,
        start_time=datetime(2026, 5, 12, 6, 0, tzinfo=UTC),
    )
    assert pipeline.classical_smoke == SmokeOpinionConfig(dark_smoke=True, diff_threshold=8)
    pipeline.reconfigure(camera.model_copy(update={"rules": confirm}))
    assert pipeline.classical_smoke == SmokeOpinionConfig()
    pipeline.reconfigure(camera)
    assert pipeline.classical_smoke is None


def test_weak_smoke_corroboration_is_per_camera_and_follows_its_settings() -> None:
    """The suite's cameras corroborate weak smoke boxes: each pipeline wraps the shared
    model in its own grey-change cue; handing it the same model again keeps the cue's
    background; new detector settings build a new one; without the setting none runs."""
    config = load_config(SUITE)
    camera = next(c for c in config.devices.cameras if c.id == "cam-smoke-plume")
    shared = FixedDetections()
    pipelines = [
        CameraPipeline(
            site_id=config.site.id,
            camera=camera,
            tz=config.site.timezone,
            start_time=datetime(2026, 5, 12, 6, 0, tzinfo=UTC),
            detector=shared,
        )
        for _ in range(2)
    ]
    first, second = (p.detector for p in pipelines)
    assert isinstance(first, SmokeCorroboration) and isinstance(second, SmokeCorroboration)
    assert first.detector is shared and first.change is not second.change
    pipelines[0].reconfigure(camera, shared)
    assert pipelines[0].detector is first
    stricter = camera.detector.model_copy(update={"corroborated_smoke": 0.2})
    pipelines[0].reconfigure(camera.model_copy(update={"detector": stricter}))
    assert isinstance(pipelines[0].detector, SmokeCorroboration)
    assert pipelines[0].detector is not first
    plain = camera.detector.model_copy(update={"corroborated_smoke": None})
    rules = tuple(r.model_copy(update={"min_confidence": 0.4}) for r in camera.rules)
    pipelines[1].reconfigure(camera.model_copy(update={"detector": plain, "rules": rules}))
    assert pipelines[1].detector is shared


class FixedDetections:
    classes = ("smoke",)

    def detect(self, image: object) -> Detections:
        return Detections.empty()
