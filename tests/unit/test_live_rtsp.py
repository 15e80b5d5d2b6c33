"""A live RTSP camera gives what a replay of its video gives (issue 23, finding 5): read
from a real RTSP server (Debian's GStreamer rtsp-server, started by the test, serving an
H.264 encoding of a file at the file's pace), over TCP by default, each frame carries the
stream's own timestamp, so the frames and times the detector sees match those of the file
up to one constant offset, even when the first frames arrive in a burst."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import cv2
import pytest

from citywatch.config import load_config
from citywatch.contracts import Alert
from citywatch.contracts.messages import Phase
from citywatch.edge.camera.agent import CameraGateway
from citywatch.edge.camera.evaluation.replay import replay_video
from citywatch.edge.camera.pipeline import CameraPipeline
from citywatch.hardware.camera.street.player import ScenarioPlayer
from citywatch.hardware.camera.street.scenario import load_scenario
from citywatch.hardware.camera.video_source import SourceOpenError, VideoSource
from citywatch.models.detector_factory import load_detector
from tests.conftest import REPO
from tests.unit.gst_rtsp_server import RtspServer, available, to_h264
from tests.unit.test_camera_agent import Collected, at_any_hour
from tests.unit.test_video_source import index_of, write_video

pytestmark = [pytest.mark.service, pytest.mark.usefixtures("gstreamer")]


@pytest.fixture(scope="module")
def gstreamer() -> None:
    """Debian's GStreamer RTSP server, which scripts/setup.sh installs as root: without it
    the test fails saying what to install (it is the real thing, never skipped)."""
    if not available():
        pytest.fail(
            "needs Debian's GStreamer RTSP server (scripts/setup.sh installs it as root):"
            " apt-get install gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp"
            " gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly python3-gi"
        )

FPS, DETECT_FPS = 25, 5


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 s at 25 fps, each frame's grey level its index (mod 64)."""
    return write_video(tmp_path_factory.mktemp("rtsp") / "clip.avi", 10 * FPS, FPS)


@pytest.fixture
def camera(clip: Path, request: pytest.FixtureRequest) -> Iterator[RtspServer]:
    """The clip served by a real RTSP server offering the transport the test names."""
    server = RtspServer(clip, transport=getattr(request, "param", "any"))
    server.start()
    yield server
    server.stop()


def _read(source: VideoSource, count: int) -> list[tuple[int, float]]:
    """(index encoded in the image, pts) of the next ``count`` frames."""
    frames = []
    while len(frames) < count:
        frame = source.read()
        assert frame is not None
        frames.append((index_of(frame.image) % 64, frame.pts_s))
    return frames


@pytest.mark.parametrize("camera", ["udp"], indirect=True)
def test_rtsp_runs_over_tcp_by_default(camera: RtspServer) -> None:
    """A camera offering only UDP does not open by default; configured for UDP, it does."""
    with pytest.raises(SourceOpenError):
        VideoSource(camera.url, detect_fps=DETECT_FPS, open_timeout_s=3).open()
    with VideoSource(camera.url, detect_fps=DETECT_FPS, rtsp_transport="udp") as source:
        assert len(_read(source, 3)) == 3


def test_live_frames_carry_the_streams_timestamps_like_the_file(
    camera: RtspServer, clip: Path
) -> None:
    """Across a 1.5 s stall of the reader (the frames wait in the socket, then come in a
    burst), live pts minus the file's pts of the same frame stays one constant (within
    2 ms), and the detection rate picks the frames it picks in the file."""
    with VideoSource(str(clip), detect_fps=FPS) as file:
        file_pts = {index % 64: pts for index, pts in _read(file, 64)}
    with VideoSource(camera.url, detect_fps=DETECT_FPS) as live:
        frames = _read(live, 10)
        time.sleep(1.5)  # the detector stalls: the frames wait in the socket
        frames += _read(live, 20)
    offsets = [pts - file_pts[index] for index, pts in frames]
    # The clip's images repeat every 64 frames (2.56 s): compare modulo that.
    wrap = 64 / FPS
    spread = [((o - offsets[0] + wrap / 2) % wrap) - wrap / 2 for o in offsets]
    assert max(abs(s) for s in spread) < 0.002, spread
    # Before the stall nothing was lost: the detection rate picked every fifth frame.
    assert [index for index, _ in frames[:10]] == [i * FPS // DETECT_FPS for i in range(10)]


SCENE_S = 40


@pytest.fixture(scope="module")
def parked_car_h264(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 40 s of the suite's parked-car scene as H.264 (a car pulls into the curb
    lane at 8 s and stays): what a camera would send."""
    scenario = load_scenario("parked-car")
    player = ScenarioPlayer(scenario)
    folder = tmp_path_factory.mktemp("scene")
    avi = folder / "parked-car.avi"
    writer = cv2.VideoWriter(str(avi), cv2.VideoWriter.fourcc(*"MJPG"), scenario.fps, scenario.size)
    for index in range(round(SCENE_S * scenario.fps)):
        writer.write(player.frame(index)[0])
    writer.release()
    return to_h264(avi, folder / "parked-car.mkv")


@pytest.mark.slow
def test_the_live_agent_alerts_as_a_replay_of_the_same_video(parked_car_h264: Path) -> None:
    """The suite's parked-car camera fed live by an RTSP server serving the H.264 file, and
    the same file replayed: the same alerts, the start within one detection interval of
    video time (live video time counted from its first frame)."""
    config = load_config(REPO / "configs" / "scenario-suite.yaml")
    camera = at_any_hour(next(c for c in config.devices.cameras if c.id == "cam-parked-car"))
    detector = load_detector(camera.detector)
    replayed = replay_video(
        CameraPipeline(
            site_id=config.site.id,
            camera=camera,
            tz=config.site.timezone,
            start_time=datetime.now(UTC),
            detector=detector,
            evidence=None,
        ),
        parked_car_h264,
    ).alerts

    server = RtspServer(parked_car_h264)
    live_camera = camera.model_copy(
        update={"source": camera.source.model_copy(update={"url": server.url})}
    )
    config = config.model_copy(
        update={"devices": config.devices.model_copy(update={"cameras": (live_camera,)})}
    )
    first_pts: list[float] = []
    published = Collected()
    gateway = CameraGateway(
        config,
        camera.gateway,
        published,
        telemetry_interval_s=3600,
        record_detections=lambda _, frame, __: first_pts.append(frame.pts_s),
        clip_thread=False,
    )
    server.start()
    try:
        gateway.run(duration_s=SCENE_S + 3)
    finally:
        server.stop()
    live = [m for m in published.messages if isinstance(m, Alert)]

    def starts(alerts: list[Alert], origin: float) -> list[tuple[str, str, float]]:
        return [
            (a.kind.value, a.location.zone or "", float(a.attributes["pts_s"]) - origin)
            for a in alerts
            if a.phase is Phase.START
        ]

    expected, got = starts(replayed, 0.0), starts(live, first_pts[0])
    assert (
        [e[:2] for e in got]
        == [e[:2] for e in expected]
        == [("illegal_parking", "no-parking-curb")]
    )
    assert got[0][2] == pytest.approx(expected[0][2], abs=1 / camera.source.detect_fps + 1e-3)
