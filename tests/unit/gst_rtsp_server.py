"""A real RTSP server for tests: Debian's GStreamer rtsp-server serving one video file as
H.264 at its own pace, like a camera. Run by the system Python (``/usr/bin/python3``, where
``python3-gi`` and ``gir1.2-gst-rtsp-server-1.0`` live), not the project's virtualenv:

    /usr/bin/python3 tests/unit/gst_rtsp_server.py VIDEO PORT [tcp|udp|any]
    /usr/bin/python3 tests/unit/gst_rtsp_server.py --h264 MJPG.avi OUT.mkv

The server prints ``ready`` once it listens; an MJPG ``.avi`` is encoded to H.264 as it is
served, an H.264 ``.mkv`` (made by ``--h264``, :func:`to_h264`) is served as it is, so a
replay of that file decodes exactly the frames the camera sends. :class:`RtspServer`
starts and stops it from a test.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Literal

SYSTEM_PYTHON = "/usr/bin/python3"
MOUNT = "/camera"


def to_h264(avi: Path, mkv: Path) -> Path:
    """Encode an MJPG ``avi`` to an H.264 ``mkv`` (what a camera would send)."""
    subprocess.run([SYSTEM_PYTHON, __file__, "--h264", str(avi), str(mkv)], check=True, timeout=600)
    return mkv


def available() -> bool:
    """Whether the system Python can run a GStreamer RTSP server with an H.264 encoder."""
    if shutil.which(SYSTEM_PYTHON) is None:
        return False
    check = (
        "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0');"
        "from gi.repository import Gst, GstRtspServer; Gst.init(None);"
        "assert Gst.ElementFactory.find('x264enc') and Gst.ElementFactory.find('jpegdec')"
    )
    done = subprocess.run([SYSTEM_PYTHON, "-c", check], capture_output=True, timeout=30)
    return done.returncode == 0


class RtspServer:
    """The server as a child process, restartable on the same port (a camera that drops)."""

    def __init__(self, video: Path, *, transport: Literal["tcp", "udp", "any"] = "any") -> None:
        """``transport``: the only RTP transport the server offers (``any``: both)."""
        self.video, self.transport = video, transport
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self._child: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}{MOUNT}"

    def start(self) -> None:
        child = subprocess.Popen(
            [SYSTEM_PYTHON, __file__, str(self.video), str(self.port), self.transport],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert child.stdout is not None
        line = child.stdout.readline()
        if line.strip() != "ready":
            child.kill()
            raise RuntimeError(f"the RTSP server did not start: {line}{child.stdout.read()}")
        self._child = child

    def stop(self) -> None:
        if self._child is not None:
            self._child.terminate()
            self._child.wait(timeout=10)
            self._child = None


def _serve(video: str, port: int, transport: str) -> None:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtsp", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtsp, GstRtspServer

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    factory = GstRtspServer.RTSPMediaFactory()
    source = (
        f'filesrc location="{video}" ! matroskademux ! h264parse'
        if video.endswith(".mkv")
        else f'filesrc location="{video}" ! avidemux ! jpegdec ! videoconvert ! {_X264}'
    )
    factory.set_launch(f"( {source} ! rtph264pay name=pay0 pt=96 config-interval=1 )")
    factory.set_shared(False)  # each client its own pipeline: a failed SETUP spoils none
    if transport == "tcp":
        factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
    elif transport == "udp":
        factory.set_protocols(GstRtsp.RTSPLowerTrans.UDP)
    server.get_mount_points().add_factory(MOUNT, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on port {port}", flush=True)
        sys.exit(1)
    print("ready", flush=True)
    GLib.MainLoop().run()


_X264 = "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25"


def _encode(avi: str, mkv: str) -> None:
    import gi

    gi.require_version("Gst", "1.0")
    from gi.repository import Gst

    Gst.init(None)
    pipeline = Gst.parse_launch(
        f'filesrc location="{avi}" ! avidemux ! jpegdec ! videoconvert ! {_X264}'
        f' ! h264parse ! matroskamux ! filesink location="{mkv}"'
    )
    pipeline.set_state(Gst.State.PLAYING)
    bus = pipeline.get_bus()
    message = bus.timed_pop_filtered(
        Gst.CLOCK_TIME_NONE, Gst.MessageType.EOS | Gst.MessageType.ERROR
    )
    pipeline.set_state(Gst.State.NULL)
    if message.type == Gst.MessageType.ERROR:
        sys.exit(f"cannot encode {avi}: {message.parse_error()[0].message}")


if __name__ == "__main__":
    if sys.argv[1] == "--h264":
        _encode(sys.argv[2], sys.argv[3])
        sys.exit(0)
    _serve(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "any")
