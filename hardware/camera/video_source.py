"""Video in: RTSP, HTTP(S) and files through OpenCV's FFmpeg backend, at a detection rate.

A camera sends 25 frames a second; the detector wants maybe 5. Frames in between are
skipped with ``grab()`` (demuxed and decoded, but never converted to BGR nor copied) and
only used ones are ``retrieve()``-d. Every frame carries ``pts_s``: for files and other
clocked sources, video time (frame index / frame rate), so a replay is exact; for live
streams, seconds since the source first opened, continuing across reconnects: within one
connection an RTSP stream's own timestamps (so a frame that arrives late or in a burst keeps
the time it was filmed, as in a replay of the recording), the wall clock across the gap of
a reconnect and for streams without real timestamps (HTTP MJPEG). RTSP runs over TCP by
default (``rtsp_transport``): FFmpeg's default UDP loses packets on a busy link and
smears or drops frames.

This module opens and reads; it does not retry. A live source that drops raises
:class:`StreamLost` and the reconnect policy (backoff, logging per outage) lives with the
camera loop in ``edge/camera/source.py``. Other modules can plug a scheme in (a
``synthetic:`` renderer) with :func:`register_scheme`; the built-in simulated ones load
only when a URL names them (:data:`PLUGIN_MODULES`).
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, Literal, NoReturn, Protocol
from urllib.parse import unquote, urlsplit

import cv2
import numpy as np
from numpy.typing import NDArray

from citywatch.hardware.camera.frames import Frame
from citywatch.hardware.camera.video_clock import DetectionCadence, StreamClock

__all__ = [
    "LIVE_SCHEMES",
    "Capture",
    "CorruptVideo",
    "SourceKind",
    "SourceNotFound",
    "SourceOpenError",
    "SourceSpec",
    "SourceStats",
    "StreamLost",
    "UnknownScheme",
    "UnreadableVideo",
    "VideoSource",
    "VideoSourceError",
    "parse_source",
    "recorded_start",
    "redact_url",
    "register_scheme",
]

log = logging.getLogger(__name__)

LIVE_SCHEMES = frozenset({"rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt"})
RtspTransport = Literal["tcp", "udp"]
_TIMESTAMPED = frozenset({"rtsp", "rtsps"})
"""Live schemes whose frames carry the camera's timestamps (RTP); FFmpeg makes up those of
an HTTP MJPEG stream from a frame count at an assumed rate, so those run on the wall clock."""
_FFMPEG_OPTIONS = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_OPEN_LOCK = threading.Lock()
"""OpenCV reads FFmpeg's options from the environment at each open: one open at a time."""
TRUNCATION_TOLERANCE = 0.05
"""A file may end this share of its declared frame count early (counts are estimates)."""


class VideoSourceError(Exception):
    """A video source cannot deliver frames."""


class SourceOpenError(VideoSourceError):
    """The source cannot be opened at all."""


class SourceNotFound(SourceOpenError, FileNotFoundError):
    """A video file that does not exist."""


class UnknownScheme(SourceOpenError, ValueError):
    """A URL scheme nothing handles."""


class UnreadableVideo(SourceOpenError):
    """A file exists but FFmpeg cannot open it: corrupt, cut short, or an unknown codec."""


class CorruptVideo(VideoSourceError):
    """A file that opened but gave no frames, or ended well before its declared length."""

    def __init__(self, location: str, frames_read: int, frames_declared: int | None) -> None:
        self.location = location
        self.frames_read = frames_read
        self.frames_declared = frames_declared
        declared = f" of {frames_declared} declared" if frames_declared else ""
        super().__init__(
            f"{location}: video ended after {frames_read} frame(s){declared}; the file is"
            " corrupt or truncated (an interrupted copy or recording?). Re-copy or re-encode it"
            " (ffmpeg -i in -c:v libx264 out.mp4)"
        )


class StreamLost(VideoSourceError):
    """A live stream stopped delivering frames; reopen it (with backoff) to continue."""


class SourceKind(Enum):
    FILE = "file"
    LIVE = "live"
    PLUGIN = "plugin"


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """A parsed source URL: what kind it is and what to hand the opener."""

    url: str
    kind: SourceKind
    scheme: str
    target: str
    """A file path, the URL itself for live streams, or the text after ``scheme:``."""


class Capture(Protocol):
    """The part of ``cv2.VideoCapture`` a source reads through; plug-in schemes provide it."""

    def isOpened(self) -> bool: ...

    def grab(self) -> bool: ...

    def retrieve(self) -> tuple[bool, NDArray[Any] | None]: ...

    def get(self, prop_id: int) -> float: ...

    def release(self) -> None: ...


CaptureFactory = Callable[[str], Capture]
"""Opens the text after ``scheme:``; raise :class:`SourceOpenError` when it cannot."""

RecordedStart = Callable[[str], datetime | None]
"""When the recording behind ``scheme:NAME`` began by its own clock (a scene's scripted start)."""

_SCHEMES: dict[str, CaptureFactory] = {}
_RECORDED_START: dict[str, RecordedStart] = {}
PLUGIN_MODULES = {"synthetic": "citywatch.hardware.camera.synthetic_capture"}
"""Schemes whose module registers itself when a URL first names them, so a gateway that only
reads RTSP never imports the street renderer (nor any other simulator)."""


def register_scheme(
    scheme: str, factory: CaptureFactory, recorded_start: RecordedStart | None = None
) -> None:
    """Let ``scheme:NAME`` URLs open through ``factory`` (frames clocked by its CAP_PROP_FPS)."""
    name = scheme.lower()
    if name in LIVE_SCHEMES or name == "file" or not name.isidentifier():
        raise ValueError(f"cannot register scheme {scheme!r}: reserved or not a plain name")
    _SCHEMES[name] = factory
    if recorded_start is not None:
        _RECORDED_START[name] = recorded_start


def _is_plugin(scheme: str) -> bool:
    if scheme not in _SCHEMES and scheme in PLUGIN_MODULES:
        importlib.import_module(PLUGIN_MODULES[scheme])
    return scheme in _SCHEMES


def recorded_start(url: str) -> datetime | None:
    """The recording's own start time for a plug-in source that knows it, else ``None``."""
    spec = parse_source(url)
    if spec.kind is not SourceKind.PLUGIN or spec.scheme not in _RECORDED_START:
        return None
    return _RECORDED_START[spec.scheme](spec.target)


def parse_source(url: str) -> SourceSpec:
    """Classify ``url``: a file path or ``file://``, a live stream, or a registered scheme."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in LIVE_SCHEMES:
        return SourceSpec(url, SourceKind.LIVE, scheme, url)
    if scheme == "file":
        return SourceSpec(url, SourceKind.FILE, scheme, unquote(parts.netloc + parts.path))
    if _is_plugin(scheme):
        return SourceSpec(url, SourceKind.PLUGIN, scheme, url.split(":", 1)[1])
    if scheme and len(scheme) > 1:  # one letter: a Windows drive, i.e. a path
        known = sorted({*LIVE_SCHEMES, "file", *_SCHEMES})
        raise UnknownScheme(
            f"{url!r}: no source handles the scheme {scheme!r}; use one of {known} or a file path"
        )
    return SourceSpec(url, SourceKind.FILE, "file", url)


@dataclass
class SourceStats:
    """Counters of one source over its life, reconnects included."""

    frames_read: int = 0
    """Frames taken from the source (grabbed), used or skipped."""
    frames_decoded: int = 0
    """Frames retrieved as images: those delivered at the detection rate."""
    frames_skipped: int = 0
    reconnects: int = 0
    """Successful re-opens of a live source after a loss."""
    frames_lost: int = 0
    """Frames an RTSP stream's timestamps skipped: dropped by the network or the camera."""
    last_frame_monotonic_s: float | None = None
    """``time.monotonic()`` when the last frame was delivered: a stalled source shows here."""


@dataclass(frozen=True, slots=True)
class _Timing:
    fps: float
    declared_frames: int | None


class VideoSource:
    """One camera's video, delivered at ``detect_fps`` (every frame when None)."""

    def __init__(
        self,
        url: str,
        *,
        detect_fps: float | None = None,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        rtsp_transport: RtspTransport = "tcp",
    ) -> None:
        if detect_fps is not None and not detect_fps > 0:
            raise ValueError(f"detect_fps must be positive, got {detect_fps}")
        self.spec = parse_source(url)
        self.detect_fps = detect_fps
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.stats = SourceStats()
        self._clock = clock
        self._capture: Capture | None = None
        self._timing = _Timing(0.0, None)
        self._origin_s: float | None = None  # live: clock at first open
        self._next_index = 0
        self._opened_at_index = 0  # file: global index of this open's first frame
        self._pts_offset_s = 0.0  # file: video time at which this open starts
        self._last_pts_s: float | None = None
        self._cadence = DetectionCadence(detect_fps)
        self.rtsp_transport = rtsp_transport
        self._stream_clock = StreamClock()

    @property
    def url(self) -> str:
        return self.spec.url

    @property
    def is_live(self) -> bool:
        return self.spec.kind is SourceKind.LIVE

    @property
    def is_open(self) -> bool:
        return self._capture is not None

    @property
    def fps(self) -> float:
        """The source's frame rate as it declares it (0 when unknown or not open yet)."""
        return self._timing.fps

    def open(self) -> None:
        """Open (or re-open) the source; index and ``pts_s`` continue from the last frame."""
        self.close()
        capture = self._open_capture()
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        fps = fps if np.isfinite(fps) and 0 < fps <= 1000 else 0.0
        declared = capture.get(cv2.CAP_PROP_FRAME_COUNT)
        declared_frames = int(declared) if np.isfinite(declared) and declared > 0 else None
        self._capture = capture
        self._timing = _Timing(fps, declared_frames)
        if self.is_live:
            self._stream_clock.rebase()
            if self._origin_s is None:
                self._origin_s = self._clock()
            else:
                self.stats.reconnects += 1
        else:
            self._opened_at_index = self._next_index
            if self._last_pts_s is not None:
                self._pts_offset_s = self._last_pts_s + self._frame_period_s()
        log.debug("opened %s (fps %.2f, frames %s)", self.url, fps, declared_frames)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def __enter__(self) -> VideoSource:
        if not self.is_open:
            self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        """Frames at the detection rate until a file ends (opens the source if needed)."""
        if not self.is_open:
            self.open()
        while (frame := self.read()) is not None:
            yield frame

    def read(self) -> Frame | None:
        """The next frame due at the detection rate; None at the normal end of a file.

        Raises :class:`StreamLost` when a live stream stops, :class:`CorruptVideo` when a
        file ends early or a frame cannot be decoded.
        """
        capture = self._capture
        if capture is None:
            raise VideoSourceError(f"{self.url}: read() before open()")
        while True:
            if not capture.grab():
                self._check_end()
                return None
            index = self._next_index
            self._next_index += 1
            self.stats.frames_read += 1
            pts_s = self._pts(index, capture)
            self._last_pts_s = pts_s
            if not self._due(pts_s):
                self.stats.frames_skipped += 1
                continue
            ok, image = capture.retrieve()
            if not ok or image is None:
                self._decode_failed(index)
            self.stats.frames_decoded += 1
            self.stats.last_frame_monotonic_s = time.monotonic()
            return Frame(np.asarray(image, dtype=np.uint8), index, pts_s)

    def _open_capture(self) -> Capture:
        spec = self.spec
        if spec.kind is SourceKind.PLUGIN:
            capture = _SCHEMES[spec.scheme](spec.target)
            if not capture.isOpened():
                raise SourceOpenError(f"{self.url}: the {spec.scheme!r} source did not open")
            return capture
        if spec.kind is SourceKind.FILE:
            path = Path(spec.target)
            if not path.is_file():
                what = "is a directory, not a video file" if path.is_dir() else "does not exist"
                raise SourceNotFound(f"video file {path} {what}; check the camera's source.url")
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            round(self.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            round(self.read_timeout_s * 1000),
        ]
        capture = self._ffmpeg_capture(spec.target, params)
        if capture.isOpened():
            return capture
        capture.release()
        if spec.kind is SourceKind.FILE:
            size = Path(spec.target).stat().st_size
            raise UnreadableVideo(
                f"video file {spec.target} ({size} bytes) cannot be opened by FFmpeg: it is"
                " corrupt, cut short (an mp4 without its index), or in an unsupported codec."
                " Re-copy or re-encode it (ffmpeg -i in -c:v libx264 out.mp4)"
            )
        raise SourceOpenError(
            f"cannot open stream {redact_url(spec.url)} within {self.open_timeout_s:g} s: check that"
            " the camera is powered and reachable, and the URL, path and credentials"
        )

    def _ffmpeg_capture(self, target: str, params: list[int]) -> Capture:
        """Open ``target`` with FFmpeg, RTSP over ``rtsp_transport`` (options the user set
        in the environment kept, and kept first)."""
        if self.spec.scheme not in ("rtsp", "rtsps"):
            return cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
        with _OPEN_LOCK:
            before = os.environ.get(_FFMPEG_OPTIONS)
            if before is None or "rtsp_transport" not in before:
                ours = f"rtsp_transport;{self.rtsp_transport}"
                os.environ[_FFMPEG_OPTIONS] = f"{before}|{ours}" if before else ours
            try:
                return cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
            finally:
                if before is None:
                    os.environ.pop(_FFMPEG_OPTIONS, None)
                else:
                    os.environ[_FFMPEG_OPTIONS] = before

    def _pts(self, index: int, capture: Capture) -> float:
        if self.is_live:
            assert self._origin_s is not None
            wall_s = self._clock() - self._origin_s
            pts_s = wall_s
            if self.spec.scheme in _TIMESTAMPED:
                stream_ms = float(capture.get(cv2.CAP_PROP_POS_MSEC))
                pts_s = self._stream_clock.pts(wall_s, stream_ms, self._frame_period_s())
                self.stats.frames_lost = self._stream_clock.lost
        else:
            pts_s = self._pts_offset_s + (index - self._opened_at_index) * self._frame_period_s()
        if self._last_pts_s is not None and pts_s <= self._last_pts_s:
            pts_s = self._last_pts_s + 1e-6  # a coarse clock must not repeat a time
        return pts_s

    def _frame_period_s(self) -> float:
        # A file without a usable frame rate is clocked at 25 fps, the common camera rate.
        return 1.0 / (self._timing.fps or 25.0)

    def _due(self, pts_s: float) -> bool:
        """Whether the frame at ``pts_s`` is the next one the detection rate asks for; a
        quarter frame of slack absorbs the rounding of file times and of a live stream's
        timestamps (without it, the frame due at 2.4 s read at 2.3999999 s is skipped and
        every later pick shifts by a frame against a replay of the recording)."""
        return self._cadence.due(pts_s, 0.25 * self._frame_period_s())

    def _check_end(self) -> None:
        """A grab failed: the normal end of a file (returns), a truncated one, or a lost stream."""
        opened_frames = self._next_index - self._opened_at_index
        if self.is_live:
            raise StreamLost(f"stream {redact_url(self.url)} stopped delivering frames")
        declared = self._timing.declared_frames
        if opened_frames == 0:
            raise CorruptVideo(self.spec.target, 0, declared)
        if declared and opened_frames < declared * (1 - TRUNCATION_TOLERANCE) - 1:
            raise CorruptVideo(self.spec.target, opened_frames, declared)

    def _decode_failed(self, index: int) -> NoReturn:
        if self.is_live:
            raise StreamLost(f"stream {redact_url(self.url)}: frame {index} could not be decoded")
        raise CorruptVideo(
            self.spec.target, index - self._opened_at_index, self._timing.declared_frames
        )


def redact_url(url: str, keep_user: bool = True) -> str:
    """``url`` without its password (and without its user name unless ``keep_user``), for
    logs, error messages and status details."""
    parts = urlsplit(url)
    if parts.password is None and (keep_user or parts.username is None):
        return url
    host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    netloc = f"{parts.username}:***@{host}" if keep_user else host
    return parts._replace(netloc=netloc).geturl()
