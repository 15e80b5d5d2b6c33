"""The camera gateway's shell: model loading errors, hot reload, telemetry, a full run."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from citywatch.cli.main import app
from citywatch.config import CitywatchConfig, load_config
from citywatch.config.camera import CameraConfig
from citywatch.contracts import Alert, Status, Telemetry
from citywatch.contracts.messages import DeviceState, Evidence, Phase
from citywatch.edge.camera.agent import CameraGateway
from citywatch.edge.outbox import PutResult
from citywatch.hardware.camera.street.player import ScenarioPlayer
from citywatch.hardware.camera.street.scenario import load_scenario
from tests.conftest import REPO
from tests.unit.test_stream_probe import RtspResponder
from tests.unit.test_video_source import MjpegServer, cut_in_half, write_video

runner = CliRunner()
CAMERA = "cam-parked-car"


class Collected:
    def __init__(self) -> None:
        self.messages: list[Alert | Telemetry | Evidence | Status] = []

    def publish_many(self, messages: Sequence[Alert | Telemetry | Evidence | Status]) -> PutResult:
        self.messages += messages
        return PutResult(stored=len(messages), duplicates=0, shed=0, refused=())


@pytest.fixture
def suite_copy(tmp_path: Path) -> Path:
    """A private copy of the suite config to edit: (main file, cameras file)."""
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    return tmp_path / "configs" / "scenario-suite.yaml"


def _cameras_file(config: Path) -> Path:
    return config.parent / "scenario-suite" / "cameras.yaml"


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _only_camera(path: Path) -> CitywatchConfig:
    """The suite config at ``path`` with its gateway down to the one camera under test."""
    config = load_config(path)
    only = tuple(c for c in config.devices.cameras if c.id == CAMERA)
    return config.model_copy(
        update={"devices": config.devices.model_copy(update={"cameras": only})}
    )


def _gateway(config: Path, publisher: Collected | None = None) -> CameraGateway:
    return CameraGateway(
        load_config(config), "gw-suite", publisher or Collected(), config_path=config
    )


@pytest.mark.slow
def test_a_changed_rule_reaches_the_running_cameras(suite_copy: Path) -> None:
    gateway = _gateway(suite_copy)
    _edit(_cameras_file(suite_copy), "dwell: 20s", "dwell: 45s")
    assert gateway.check_reload()
    worker = gateway.workers[CAMERA]
    assert worker._pending is not None
    camera, detector = worker._pending
    assert camera.rules[0].dwell.total_seconds() == 45  # type: ignore[union-attr]
    assert detector == worker.detector  # same detector settings: the same models


@pytest.mark.slow
def test_changed_detector_settings_reach_the_running_cameras(suite_copy: Path) -> None:
    """An operator lowering the weak-smoke floor gets it without a restart: the model is loaded
    with the new settings, once for all cameras that share them, before the change lands."""
    gateway = _gateway(suite_copy)
    before = gateway.workers[CAMERA].detector
    _edit(
        _cameras_file(suite_copy),
        "{corroborated_smoke: 0.05}",
        "{corroborated_smoke: 0.04}",
    )
    assert gateway.check_reload()
    pending = [worker._pending for worker in gateway.workers.values()]
    assert all(p is not None for p in pending)
    detectors = {tuple(map(id, p[1])) for p in pending if p is not None}
    assert len(detectors) == 1 and before not in [p[1] for p in pending if p is not None]
    camera, detector = gateway.workers[CAMERA]._pending  # type: ignore[misc]
    assert camera.detector.corroborated_smoke == 0.04
    assert detector[0].model_confidence == 0.04  # type: ignore[attr-defined]
    worker = gateway.workers[CAMERA]
    worker._apply_pending()  # what the camera thread does before its next frame
    assert worker.detector is detector and worker.camera == camera


@pytest.mark.slow
def test_an_invalid_change_is_refused_with_file_line_and_field(
    suite_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = _gateway(suite_copy)
    _edit(_cameras_file(suite_copy), "dwell: 20s", "dwell: soon")
    assert not gateway.check_reload()
    assert gateway.reload_failures == 1
    assert gateway.workers[CAMERA]._pending is None
    refused = [r.getMessage() for r in caplog.records if "config change rejected" in r.getMessage()]
    assert refused and "cameras.yaml:" in refused[0] and "dwell" in refused[0]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("zones: [no-parking-curb], dwell: 20s,", "zones: [no-parking-curb], dwell: 20s, classes: [tractor],"),
        ("{corroborated_smoke: 0.05}", "{corroborated_smoke: 0.05, weights: /nowhere/model.onnx}"),
    ],
    ids=["rule for a class the model lacks", "model that fails to load"],
)  # fmt: skip
def test_a_change_the_model_cannot_serve_is_refused_as_a_whole(
    suite_copy: Path, old: str, new: str
) -> None:
    """The cameras keep their running rules and model; nothing is half applied."""
    gateway = _gateway(suite_copy)
    _edit(_cameras_file(suite_copy), old, new)
    assert not gateway.check_reload()
    assert gateway.reload_failures == 1
    assert all(worker._pending is None for worker in gateway.workers.values())


@pytest.mark.slow
def test_nothing_changed_means_no_reload(suite_copy: Path) -> None:
    gateway = _gateway(suite_copy)
    assert not gateway.check_reload()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("detector: &suite-detector {corroborated_smoke: 0.05}",
          "detector: &suite-detector {corroborated_smoke: 0.05, weights: /nowhere/model.onnx}"),
         "not found at /nowhere/model.onnx"),
    ],
)  # fmt: skip
def test_the_agent_refuses_to_start_without_its_model_or_classes(
    suite_copy: Path, edit: tuple[str, str], message: str
) -> None:
    _edit(_cameras_file(suite_copy), *edit)
    result = runner.invoke(
        app, ["edge", "camera", "--gateway", "gw-suite", "--config", str(suite_copy)]
    )
    assert result.exit_code == 2
    assert message in result.output


@pytest.mark.service
def test_one_camera_runs_its_scene_and_reports_telemetry(suite_copy: Path) -> None:
    """The whole agent path on one short scene, played as fast as the model goes."""
    cameras = _cameras_file(suite_copy)
    _edit(cameras, 'source: {url: "synthetic:parked-car", detect_fps: 5}',
          'source: {url: "synthetic:parked-car", detect_fps: 1, speed: 0}')  # fmt: skip
    config = _only_camera(suite_copy)
    collected = Collected()
    gateway = CameraGateway(config, "gw-suite", collected, telemetry_interval_s=3600)
    gateway.run(duration_s=120)
    worker = gateway.workers[CAMERA]
    assert worker.stats.finished and worker.stats.errors == 0
    assert worker.stats.frames == pytest.approx(
        config.devices.cameras[0].source.detect_fps * 60, abs=20
    )
    telemetry = [m for m in collected.messages if isinstance(m, Telemetry)]
    assert telemetry and telemetry[-1].metrics["frames_read"] > worker.stats.frames
    assert {
        "fps", "inference_ms", "dropped_frames", "last_frame_age_s", "clip_frames_dropped"
    } <= set(telemetry[-1].metrics)  # fmt: skip


@pytest.fixture
def http_camera() -> Iterator[MjpegServer]:
    server = MjpegServer()
    server.start()
    yield server
    server.stop()


@pytest.mark.service
def test_a_camera_that_vanishes_goes_offline_and_comes_back_online(
    suite_copy: Path, http_camera: MjpegServer
) -> None:
    """An HTTP camera stops for a few seconds: its status turns offline, then online again
    once the agent has reconnected; frames keep coming afterwards."""
    config = load_config(suite_copy)
    camera = next(c for c in config.devices.cameras if c.id == CAMERA)
    live = camera.model_copy(
        update={"source": camera.source.model_copy(update={"url": http_camera.url})}
    )
    config = config.model_copy(
        update={"devices": config.devices.model_copy(update={"cameras": (live,)})}
    )
    collected = Collected()
    gateway = CameraGateway(config, "gw-suite", collected, telemetry_interval_s=3600)
    runner_thread = threading.Thread(target=gateway.run, kwargs={"duration_s": 60}, daemon=True)
    runner_thread.start()
    worker = gateway.workers[CAMERA]

    def states() -> list[str]:
        return [m.state.value for m in collected.messages if isinstance(m, Status)]

    def wait(predicate: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 25
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {states()}"
            time.sleep(0.1)

    try:
        wait(lambda: worker.stats.frames >= 3, "first frames")
        http_camera.stop()
        wait(lambda: "offline" in states(), "the offline status")
        http_camera.start()
        wait(lambda: states()[-1:] == ["online"], "the online status")
        frames = worker.stats.frames
        wait(lambda: worker.stats.frames > frames + 3, "frames after the reconnect")
    finally:
        gateway.stop.set()
        runner_thread.join(timeout=30)
    assert worker.source.stats.reconnects >= 1


@pytest.mark.service
@pytest.mark.parametrize("read_ahead", [0, 2], ids=["camera-thread", "reader-thread"])
def test_a_truncated_file_stops_its_camera_with_the_reason_after_the_frames_it_had(
    suite_copy: Path, tmp_path: Path, read_ahead: int
) -> None:
    """Decoded on the camera thread or read ahead on its own: the frames before the cut
    are processed, then the camera stops with an error that names what is wrong."""
    cut = cut_in_half(write_video(tmp_path / "clip.avi", 50, 25))
    cameras = _cameras_file(suite_copy)
    _edit(cameras, 'source: {url: "synthetic:parked-car", detect_fps: 5}',
          f'source: {{url: "{cut}", detect_fps: 25, speed: 0, read_ahead: {read_ahead}}}')  # fmt: skip
    config = _only_camera(suite_copy)
    gateway = CameraGateway(config, "gw-suite", Collected(), telemetry_interval_s=3600)
    gateway.run(duration_s=60)
    stats = gateway.workers[CAMERA].stats
    assert stats.finished and stats.errors == 1
    assert 0 < stats.frames < 50
    assert "declared" in (stats.last_error or "")


def at_any_hour(camera: CameraConfig) -> CameraConfig:
    """``camera`` with its rules' schedules removed: a live camera runs on the wall clock, and
    the suite's parking rule enforces 07:00–22:00 site time (Asia/Shanghai), so a live test
    run from 14:00 to 23:00 UTC would see no alert for a reason that is not its own."""
    rules = tuple(rule.model_copy(update={"schedule": None}) for rule in camera.rules)
    return camera.model_copy(update={"rules": rules})


def _config_with_url(config_path: Path, url: str) -> CitywatchConfig:
    """The suite config down to the camera under test, its source at ``url``, its rules
    active at any hour (:func:`at_any_hour`)."""
    config = _only_camera(config_path)
    (camera,) = config.devices.cameras
    live = at_any_hour(camera).model_copy(
        update={"source": camera.source.model_copy(update={"url": url})}
    )
    return config.model_copy(
        update={"devices": config.devices.model_copy(update={"cameras": (live,)})}
    )


@pytest.mark.service
def test_a_camera_that_cannot_open_says_why_counts_it_and_stops_offline(
    suite_copy: Path,
) -> None:
    """A wrong RTSP path: the status detail names the camera and the server's 404 while it
    retries, telemetry counts the failed opens, and the stopped agent leaves it offline."""
    server = RtspResponder(404)
    config = _config_with_url(suite_copy, server.url("wrong-path"))
    collected = Collected()
    gateway = CameraGateway(config, "gw-suite", collected, telemetry_interval_s=3600)
    try:
        gateway.run(duration_s=3)
    finally:
        server.close()
    statuses = [m for m in collected.messages if isinstance(m, Status)]
    assert statuses and all(s.state is DeviceState.OFFLINE for s in statuses)
    detail = statuses[0].detail or ""
    assert detail.startswith(f"camera {CAMERA}: RTSP 404 from rtsp://127.0.0.1:"), detail
    telemetry = [m for m in collected.messages if isinstance(m, Telemetry)]
    assert telemetry[-1].metrics["errors"] >= 1
    assert gateway.workers[CAMERA].stats.errors == telemetry[-1].metrics["errors"]


@pytest.mark.service
def test_stopping_the_agent_marks_its_cameras_offline(suite_copy: Path) -> None:
    """A camera that was delivering frames is offline, and says so, once the agent stops."""
    config = _only_camera(suite_copy)
    collected = Collected()
    gateway = CameraGateway(config, "gw-suite", collected, telemetry_interval_s=3600)
    gateway.run(duration_s=2)
    (last,) = [m for m in collected.messages if isinstance(m, Status)][-1:]
    assert (last.state, last.detail) == (
        DeviceState.OFFLINE,
        f"camera {CAMERA}: camera agent stopped",
    )


@pytest.mark.service
@pytest.mark.slow
def test_a_car_parked_through_a_camera_outage_still_alerts(suite_copy: Path) -> None:
    """Finding 6: a parked car seen 12 s, the camera dark 15 s, then seen again: blind is
    not gone, so the car keeps its clock and alerts at its 20 s dwell soon after the video
    returns, within the reconnect and re-identification time."""
    scenario = load_scenario("parked-car")
    parked = ScenarioPlayer(scenario).frame(round(30 * scenario.fps))[0]
    server = MjpegServer(parked)
    server.start()
    collected = Collected()
    gateway = CameraGateway(
        _config_with_url(suite_copy, server.url), "gw-suite", collected, telemetry_interval_s=3600
    )
    runner_thread = threading.Thread(target=gateway.run, kwargs={"duration_s": 90}, daemon=True)
    runner_thread.start()
    worker = gateway.workers[CAMERA]
    try:
        time.sleep(12)
        server.stop()
        time.sleep(15)
        server.start()
        deadline = time.monotonic() + 25  # a reconnect backoff of up to 16 s, then re-identify
        while not any(isinstance(m, Alert) for m in collected.messages):
            assert time.monotonic() < deadline, "no alert after the camera came back"
            time.sleep(0.2)
    finally:
        gateway.stop.set()
        runner_thread.join(timeout=30)
        server.stop()
    (start, *_) = [m for m in collected.messages if isinstance(m, Alert)]
    assert start.phase is Phase.START and start.dwell_s >= 20
    assert worker.source.stats.reconnects >= 1
