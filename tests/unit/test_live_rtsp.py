"""A live RTSP camera gives what a replay of its video gives (issue 23, finding 5): read
from a real RTSP server (Debian's GStreamer rtsp-server, started by the test, serving an
H.264 encoding of a file at the file's pace), over TCP by default, each frame carries the
stream's own timestamp, so the frames and times the detector sees match those of the file
up to one constant offset, even when the first frames arrive in a burst."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from citywatch.hardware.camera.video_source import SourceOpenError, VideoSource
from tests.unit.gst_rtsp_server import RtspServer, available
from tests.unit.test_video_source import index_of, write_video

pytestmark = [
    pytest.mark.service,
    pytest.mark.skipif(
        not available(),
        reason="needs Debian's GStreamer RTSP server: apt-get install gir1.2-gst-rtsp-server-1.0"
        " gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly python3-gi",
    ),
]

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
