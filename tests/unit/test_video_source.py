"""Video sources: files at a detection rate, clear errors for bad files, and a live MJPEG
stream over HTTP that drops and returns (a local http.server that is stopped and restarted)."""

from __future__ import annotations

import itertools
import logging
import random
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from citywatch.edge.backoff import Backoff
from citywatch.edge.camera.source import ReconnectingSource
from citywatch.hardware.camera import video_source
from citywatch.hardware.camera.video_clock import StreamClock
from citywatch.hardware.camera.video_source import (
    CorruptVideo,
    SourceKind,
    SourceNotFound,
    SourceOpenError,
    UnknownScheme,
    UnreadableVideo,
    VideoSource,
    parse_source,
    register_scheme,
)

SIZE = (160, 120)


def frame_image(index: int) -> NDArray[np.uint8]:
    """A frame whose grey level encodes its index (survives JPEG within ±3)."""
    return np.full((SIZE[1], SIZE[0], 3), (index * 4) % 256, np.uint8)


def index_of(image: NDArray[np.uint8]) -> int:
    return round(float(image[40:80, 40:120].mean()) / 4)


def write_video(path: Path, frames: int, fps: float, fourcc: str = "MJPG") -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, SIZE)
    assert writer.isOpened(), f"cannot write {fourcc} video"
    for i in range(frames):
        writer.write(frame_image(i))
    writer.release()
    return path


def cut_in_half(path: Path) -> Path:
    data = path.read_bytes()
    cut = path.with_name("cut_" + path.name)
    cut.write_bytes(data[: len(data) // 2])
    return cut


@pytest.fixture(scope="module")
def clip_25fps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "clip.avi", 50, 25)


def test_file_at_detect_rate_yields_every_fifth_frame_with_video_time(clip_25fps: Path) -> None:
    """5 fps of a 25 fps file: indices 0, 5, 10, ... with pts = index / 25, right images."""
    with VideoSource(str(clip_25fps), detect_fps=5) as source:
        frames = list(source)
    assert [f.index for f in frames] == list(range(0, 50, 5))
    assert [f.pts_s for f in frames] == pytest.approx([i / 25 for i in range(0, 50, 5)])
    assert [index_of(f.image) for f in frames] == [f.index for f in frames]
    stats = source.stats
    assert (stats.frames_read, stats.frames_decoded, stats.frames_skipped) == (50, 10, 40)
    assert stats.last_frame_monotonic_s is not None


@pytest.mark.parametrize("detect_fps", [None, 25, 60])
def test_detect_rate_at_or_above_stream_rate_yields_every_frame(
    clip_25fps: Path, detect_fps: float | None
) -> None:
    """No detection rate, or one the stream cannot reach, delivers every frame."""
    frames = list(VideoSource(str(clip_25fps), detect_fps=detect_fps))
    assert [f.index for f in frames] == list(range(50))


def test_uneven_rate_keeps_the_schedule(tmp_path: Path) -> None:
    """7 fps of a 30 fps file: 14 frames in 2 s, never two closer than a stream frame apart."""
    path = write_video(tmp_path / "thirty.avi", 60, 30)
    frames = list(VideoSource(str(path), detect_fps=7))
    assert len(frames) == 14
    gaps = np.diff([f.pts_s for f in frames])
    assert gaps.min() >= 4 / 30 - 1e-9 and gaps.max() <= 5 / 30 + 1e-9


def test_file_url_opens_like_a_path(clip_25fps: Path) -> None:
    """``file:///abs/path`` is the same file as ``/abs/path``."""
    assert parse_source(clip_25fps.as_uri()).target == str(clip_25fps)
    assert len(list(VideoSource(clip_25fps.as_uri(), detect_fps=5))) == 10


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    """A missing file names its path and the config key to fix."""
    missing = tmp_path / "nowhere.mp4"
    with pytest.raises(SourceNotFound, match=r"nowhere\.mp4 does not exist.*source\.url"):
        VideoSource(str(missing)).open()


def test_mp4_cut_before_its_index_is_unreadable(tmp_path: Path) -> None:
    """An mp4 cut in half (index lost) cannot be opened, and the error says why."""
    cut = cut_in_half(write_video(tmp_path / "clip.mp4", 50, 25, "mp4v"))
    with pytest.raises(UnreadableVideo, match=r"corrupt, cut short"):
        VideoSource(str(cut)).open()


def test_truncated_file_reports_frames_read_against_declared(tmp_path: Path) -> None:
    """An AVI cut in half delivers what it has, then reports frames read of declared."""
    cut = cut_in_half(write_video(tmp_path / "clip.avi", 50, 25))
    source = VideoSource(str(cut))
    delivered = []
    with pytest.raises(CorruptVideo, match=r"after \d+ frame\(s\) of 50 declared") as caught:
        for frame in source:
            delivered.append(frame.index)
    assert 0 < caught.value.frames_read < 50
    assert caught.value.frames_declared == 50
    assert len(delivered) == caught.value.frames_read


def test_garbage_file_is_unreadable(tmp_path: Path) -> None:
    """Random bytes with a video name are refused at open, naming the size."""
    junk = tmp_path / "junk.avi"
    junk.write_bytes(random.Random(0).randbytes(4096))
    with pytest.raises(UnreadableVideo, match=r"4096 bytes"):
        VideoSource(str(junk)).open()


def test_unknown_scheme_lists_the_known_ones() -> None:
    """A typo in the scheme names the schemes that work."""
    with pytest.raises(UnknownScheme, match=r"'rstp'.*rtsp"):
        VideoSource("rstp://camera.local/stream")


def test_stream_password_stays_out_of_the_error() -> None:
    """A refused RTSP URL is reported without its password."""
    source = VideoSource("rtsp://admin:hunter2@127.0.0.1:1/stream", open_timeout_s=1)
    with pytest.raises(SourceOpenError) as caught:
        source.open()
    assert "hunter2" not in str(caught.value) and "admin:***@127.0.0.1:1" in str(caught.value)


class CountingCapture:
    """A plug-in capture: ``frames`` frames at 10 fps whose grey level encodes the index."""

    def __init__(self, frames: int) -> None:
        self.remaining = frames
        self.index = -1
        self.retrieved = 0

    def isOpened(self) -> bool:
        return True

    def grab(self) -> bool:
        if self.remaining == 0:
            return False
        self.remaining -= 1
        self.index += 1
        return True

    def retrieve(self) -> tuple[bool, NDArray[np.uint8] | None]:
        self.retrieved += 1
        return True, frame_image(self.index)

    def get(self, prop_id: int) -> float:
        return {cv2.CAP_PROP_FPS: 10.0, cv2.CAP_PROP_FRAME_COUNT: 0.0}.get(prop_id, 0.0)

    def release(self) -> None:
        pass


def test_registered_scheme_opens_through_its_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    """``synthetic:NAME`` reaches the plugged-in factory; skipped frames are never retrieved."""
    monkeypatch.setattr(video_source, "_SCHEMES", {})
    captures: dict[str, CountingCapture] = {}

    def factory(name: str) -> CountingCapture:
        captures[name] = CountingCapture(20)
        return captures[name]

    register_scheme("synthetic", factory)
    assert parse_source("synthetic:street-smoke").kind is SourceKind.PLUGIN
    frames = list(VideoSource("synthetic:street-smoke", detect_fps=2))
    assert [f.index for f in frames] == [0, 5, 10, 15]
    assert [f.pts_s for f in frames] == pytest.approx([0.0, 0.5, 1.0, 1.5])
    assert captures["street-smoke"].retrieved == 4


def test_live_schemes_cannot_be_taken_over() -> None:
    """A plug-in cannot shadow rtsp or file."""
    with pytest.raises(ValueError, match="reserved"):
        register_scheme("rtsp", lambda name: CountingCapture(1))


# --- files through the camera wrapper ----------------------------------------------------


def test_wrapper_ends_a_file_at_eof(clip_25fps: Path) -> None:
    """Without loop, a file's frames end at EOF and the source is closed."""
    wrapper = ReconnectingSource(VideoSource(str(clip_25fps), detect_fps=5), camera_id="cam-1")
    assert len(list(wrapper)) == 10
    assert not wrapper.source.is_open


def test_wrapper_loops_a_file_with_time_running_on(clip_25fps: Path) -> None:
    """With loop (demos), the file restarts; index and pts keep increasing."""
    wrapper = ReconnectingSource(
        VideoSource(str(clip_25fps), detect_fps=5), camera_id="cam-1", loop=True
    )
    frames = []
    for frame in wrapper:
        frames.append(frame)
        if len(frames) == 25:
            wrapper.stop.set()
    assert [f.index for f in frames] == list(range(0, 125, 5))
    assert [f.pts_s for f in frames] == pytest.approx([i / 25 for i in range(0, 125, 5)])


def test_wrapper_does_not_retry_a_missing_file(tmp_path: Path) -> None:
    """A missing file fails at once: waiting will not make it appear."""
    wrapper = ReconnectingSource(VideoSource(str(tmp_path / "gone.avi")), camera_id="cam-1")
    with pytest.raises(SourceNotFound):
        next(iter(wrapper))


# --- a live MJPEG stream that drops and returns -------------------------------------------


class MjpegServer:
    """multipart/x-mixed-replace JPEG frames at 25 fps on a fixed local port; restartable.
    Each frame is ``image`` when given (a still scene), else :func:`frame_image`."""

    def __init__(self, image: NDArray[np.uint8] | None = None) -> None:
        self.image = image
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self._server: ThreadingHTTPServer | None = None
        self._stopping = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def start(self) -> None:
        stopping = self._stopping = threading.Event()
        still = None if self.image is None else cv2.imencode(".jpg", self.image)[1].tobytes()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                i = 0
                while not stopping.is_set():
                    jpeg = still or cv2.imencode(".jpg", frame_image(i))[1].tobytes()
                    head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                    try:
                        self.wfile.write(head.encode() + jpeg + b"\r\n")
                    except OSError:
                        return
                    i += 1
                    time.sleep(0.04)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()  # handlers return, closing their connections
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@pytest.fixture
def mjpeg_server() -> Iterator[MjpegServer]:
    server = MjpegServer()
    server.start()
    yield server
    server.stop()


@pytest.mark.service
def test_http_mjpeg_stream_reconnects_after_the_camera_returns(
    mjpeg_server: MjpegServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The camera vanishes for ~0.4 s and returns: frames continue, pts keeps increasing,
    one warning for the outage, one reconnect counted."""
    source = VideoSource(mjpeg_server.url, detect_fps=10, open_timeout_s=2, read_timeout_s=2)
    wrapper = ReconnectingSource(
        source, camera_id="cam-7", backoff=Backoff(0.05, 0.2, random.Random(0))
    )
    frames = []
    restart = threading.Timer(0.4, mjpeg_server.start)
    deadline = time.monotonic() + 15
    with caplog.at_level(logging.INFO, logger="citywatch.edge.camera.source"):
        for frame in wrapper:
            frames.append(frame)
            if len(frames) == 5:
                mjpeg_server.stop()
                restart.start()
            if len(frames) == 10 or time.monotonic() > deadline:
                wrapper.stop.set()
    restart.join()
    assert len(frames) == 10
    pts = [f.pts_s for f in frames]
    assert all(b > a for a, b in itertools.pairwise(pts))
    assert pts[5] - pts[4] >= 0.3  # the gap of the outage shows in video time
    assert [f.index for f in frames] == sorted({f.index for f in frames})
    assert source.stats.reconnects == 1
    assert wrapper.failed_attempts >= 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cam-7" in warnings[0].getMessage()
    assert any("video back" in r.getMessage() for r in caplog.records)


def test_stop_ends_a_reconnect_wait_promptly() -> None:
    """A camera that never answers: setting stop ends the loop within the wait, not after it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    wrapper = ReconnectingSource(
        VideoSource(f"http://127.0.0.1:{dead_port}/x.mjpg", open_timeout_s=1),
        camera_id="cam-9",
        backoff=Backoff(30, 60, random.Random(0)),
    )
    threading.Timer(0.3, wrapper.stop.set).start()
    started = time.monotonic()
    assert list(wrapper) == []
    assert time.monotonic() - started < 3
    assert wrapper.failed_attempts == 1 and wrapper.in_outage


P = 0.04  # a 25 fps stream's frame period


@pytest.mark.parametrize(
    ("frames", "expected_pts", "lost"),
    [
        pytest.param(
            [(0.5, 0), (0.5, 0), (0.5, 40), (0.5, 80)],
            [0.5, 0.54, 0.58, 0.62],
            0,
            id="opencv-lag-of-one-frame-added-back-burst-kept-apart",
        ),
        pytest.param([(0.5, 0), (0.54, 40), (0.58, 80)], [0.5, 0.54, 0.58], 0, id="no-lag"),
        pytest.param(
            [(0.5, 0), (0.54, 40), (0.9, 200), (0.95, 240)],
            [0.5, 0.54, 0.7, 0.74],
            3,
            id="a-jump-counts-the-frames-lost-and-keeps-the-streams-time",
        ),
        pytest.param(
            [(0.5, 0), (0.54, 40), (0.6, 0), (0.64, 40)],
            [0.5, 0.54, 0.6, 0.64],
            0,
            id="timestamps-going-back-start-again-from-the-wall-clock",
        ),
        pytest.param(
            [(0.5, 0), (0.54, 40), (9.0, 80)], [0.5, 0.54, 9.0], 0, id="slipped-from-the-wall"
        ),
        pytest.param(
            [(0.5, float("nan")), (0.53, -1.0)], [0.5, 0.53], 0, id="no-timestamps-wall-clock"
        ),
    ],
)
def test_stream_clock_follows_the_streams_timestamps(
    frames: list[tuple[float, float]], expected_pts: list[float], lost: int
) -> None:
    """Live pts: the stream's own times from the connection's first frame (OpenCV's lag of
    one frame added back), the wall clock where they are missing, go back or slip."""
    clock = StreamClock()
    assert [clock.pts(wall, ms, P) for wall, ms in frames] == pytest.approx(expected_pts)
    assert clock.lost == lost
