"""Evidence for camera alerts: snapshots, crops and clips kept on the gateway.

An alert carries references (``file://`` URI, content type, SHA-256) to evidence written
here, never the bytes. The pieces, in the order a camera loop uses them:

* :class:`FrameRing` keeps the last seconds of processed frames as JPEG, bounded by age,
  count and bytes, so a clip can start *before* the alert did;
* :class:`BestFrame` keeps, per episode, the most confident frame and box seen;
* :func:`annotate` draws the zones, the box and an ASCII label on that frame;
* :class:`EvidenceStore` writes snapshot and crop JPEGs and clips under
  ``root/camera/YYYYMMDD/<name>-<kind>.<ext>``;
* :class:`ClipRecorder` is fed every frame and, ``after_s`` after a trigger, writes the
  clip and hands back its reference (the caller then publishes an ``Evidence`` message);
* :func:`prune` deletes the oldest files first so that a gateway's disk never fills.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from citywatch.config.camera import Zone
from citywatch.contracts.messages import EvidenceKind, EvidenceRef
from citywatch.hardware.frames import Frame
from citywatch.models.detections import Image

__all__ = [
    "BestFrame",
    "BestShot",
    "BufferedFrame",
    "ClipReady",
    "ClipRecorder",
    "EvidenceError",
    "EvidenceStore",
    "FrameRing",
    "ZoneOverlay",
    "annotate",
    "crop",
    "evidence_label",
    "prune",
    "zone_overlays",
]

log = logging.getLogger(__name__)

Box = Sequence[float]
"""An xyxy box in pixels."""

_EPS_S = 1e-6  # frame times are sums of float steps: 12 * 0.2 > 2.4


class EvidenceError(RuntimeError):
    """Evidence could not be encoded or written."""


def _encode_jpeg(image: Image, quality: int) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise EvidenceError(f"cannot encode a {image.shape} image as JPEG")
    return bytes(data.tobytes())


# --- the ring of recent frames -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BufferedFrame:
    """A processed frame kept as JPEG bytes (a tenth of the raw size or less)."""

    index: int
    pts_s: float
    jpeg: bytes

    def image(self) -> Image:
        decoded = cv2.imdecode(np.frombuffer(self.jpeg, np.uint8), cv2.IMREAD_COLOR)
        if decoded is None:
            raise EvidenceError(f"buffered frame {self.index} does not decode")
        return np.asarray(decoded, dtype=np.uint8)


class FrameRing:
    """The most recent frames, no older than ``max_age_s`` behind the newest and at most
    ``max_frames`` and ``max_bytes`` of JPEG. A frame whose time goes backwards (the source
    restarted) empties the ring, so a clip never splices two runs together."""

    def __init__(
        self,
        *,
        max_age_s: float = 10.0,
        max_frames: int = 300,
        max_bytes: int = 32 * 1024 * 1024,
        jpeg_quality: int = 80,
    ) -> None:
        if max_age_s <= 0 or max_frames < 1 or max_bytes < 1:
            raise ValueError("max_age_s, max_frames and max_bytes must be positive")
        self.max_age_s = max_age_s
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.jpeg_quality = jpeg_quality
        self._frames: list[BufferedFrame] = []
        self._bytes = 0

    def push(self, frame: Frame) -> BufferedFrame:
        """Encode and keep ``frame``; drop what falls outside the bounds."""
        if self._frames and frame.pts_s < self._frames[-1].pts_s:
            self.clear()
        buffered = BufferedFrame(
            frame.index, frame.pts_s, _encode_jpeg(frame.image, self.jpeg_quality)
        )
        self._frames.append(buffered)
        self._bytes += len(buffered.jpeg)
        oldest_kept = frame.pts_s - self.max_age_s
        drop = 0
        while drop < len(self._frames) - 1 and (
            self._frames[drop].pts_s < oldest_kept - _EPS_S
            or len(self._frames) - drop > self.max_frames
            or self._bytes > self.max_bytes
        ):
            self._bytes -= len(self._frames[drop].jpeg)
            drop += 1
        del self._frames[:drop]
        return buffered

    def since(self, start_s: float) -> list[BufferedFrame]:
        """The kept frames at or after video time ``start_s``, oldest first."""
        return [f for f in self._frames if f.pts_s >= start_s]

    def clear(self) -> None:
        self._frames.clear()
        self._bytes = 0

    @property
    def newest(self) -> BufferedFrame | None:
        return self._frames[-1] if self._frames else None

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._frames)


# --- the best frame of an episode ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class BestShot:
    confidence: float
    frame: Frame
    box: tuple[float, float, float, float]


class BestFrame:
    """The most confident (frame, box) seen per episode, for the alert's snapshot.

    At most ``max_episodes`` are kept; the oldest is forgotten first, so an episode the
    caller never pops cannot grow memory without bound.
    """

    def __init__(self, max_episodes: int = 64) -> None:
        self.max_episodes = max_episodes
        self._best: dict[str, BestShot] = {}

    def offer(self, episode_id: str, confidence: float, frame: Frame, box: Box) -> bool:
        """Keep this frame if it beats the episode's best; return whether it did."""
        known = self._best.get(episode_id)
        if known is not None and known.confidence >= confidence:
            return False
        # A copy: a source may reuse its frame buffer for the next frame.
        kept = Frame(frame.image.copy(), frame.index, frame.pts_s)
        x1, y1, x2, y2 = (float(v) for v in box)
        self._best[episode_id] = BestShot(confidence, kept, (x1, y1, x2, y2))
        while len(self._best) > self.max_episodes:
            del self._best[next(iter(self._best))]
        return True

    def get(self, episode_id: str) -> BestShot | None:
        return self._best.get(episode_id)

    def pop(self, episode_id: str) -> BestShot | None:
        """The best shot, forgotten (call when the episode ends)."""
        return self._best.pop(episode_id, None)

    def __len__(self) -> int:
        return len(self._best)


# --- drawing -------------------------------------------------------------------------


@dataclass(frozen=True)
class ZoneOverlay:
    """A zone as drawn: its polygon in pixels, its name, and whether it is a mask."""

    name: str
    polygon_px: NDArray[np.int32]
    mask: bool = False


def zone_overlays(zones: Iterable[Zone], width: int, height: int) -> list[ZoneOverlay]:
    """Config zones as pixel polygons of a ``width``×``height`` image (normalized zones are
    scaled, pixel zones taken as they are)."""
    scale = np.array([width, height], np.float64)
    overlays = []
    for zone in zones:
        points = np.array(zone.polygon, np.float64)
        if zone.units == "normalized":
            points = points * scale
        overlays.append(ZoneOverlay(zone.name, np.round(points).astype(np.int32), zone.mask))
    return overlays


def evidence_label(class_name: str, confidence: float, dwell_s: float | None = None) -> str:
    """``car 0.87 dwell 192s``: the label drawn on a snapshot."""
    dwell = f" dwell {dwell_s:.0f}s" if dwell_s is not None else ""
    return f"{class_name} {confidence:.2f}{dwell}"


_WATCHED = (0, 200, 255)  # BGR amber
_MASKED = (140, 140, 140)
_BOX = (0, 0, 255)
_TEXT = (255, 255, 255)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_ZONE_ALPHA = 0.25


def _ascii(text: str) -> str:
    # cv2.putText draws only ASCII; a CJK class name would come out as "???" boxes anyway.
    return text.encode("ascii", "replace").decode("ascii")


def _text_box(
    image: Image, text: str, x: int, y: int, scale: float, color: tuple[int, ...]
) -> None:
    """Draw ``text`` on a filled ``color`` box whose top-left corner is at (x, y)."""
    thickness = max(1, round(scale * 2))
    (w, h), base = cv2.getTextSize(text, _FONT, scale, thickness)
    pad = max(2, round(h * 0.3))
    height, width = image.shape[:2]
    x = int(min(max(x, 0), max(width - w - 2 * pad, 0)))
    y = int(min(max(y, 0), max(height - h - base - 2 * pad, 0)))
    cv2.rectangle(image, (x, y), (x + w + 2 * pad, y + h + base + 2 * pad), color, cv2.FILLED)
    cv2.putText(image, text, (x + pad, y + pad + h), _FONT, scale, _TEXT, thickness, cv2.LINE_AA)


def annotate(image: Image, zones: Sequence[ZoneOverlay], box: Box | None, label: str = "") -> Image:
    """A copy of ``image`` with the zones (translucent fill, outline, name), the box and
    its label. Non-ASCII characters in names and label are drawn as ``?``."""
    out = image.copy()
    height, width = out.shape[:2]
    scale = max(0.45, min(width, height) / 900)
    line = max(2, round(min(width, height) / 300))
    if zones:
        fill = out.copy()
        for zone in zones:
            cv2.fillPoly(fill, [zone.polygon_px], _MASKED if zone.mask else _WATCHED)
        cv2.addWeighted(fill, _ZONE_ALPHA, out, 1 - _ZONE_ALPHA, 0, dst=out)
        for zone in zones:
            color = _MASKED if zone.mask else _WATCHED
            cv2.polylines(out, [zone.polygon_px], True, color, line, cv2.LINE_AA)
            top = zone.polygon_px[np.argmin(zone.polygon_px[:, 1])]
            name = _ascii(zone.name) + (" (mask)" if zone.mask else "")
            _text_box(out, name, int(top[0]), int(top[1]), scale * 0.8, color)
    if box is not None:
        x1, y1, x2, y2 = (round(float(v)) for v in box)
        cv2.rectangle(out, (x1, y1), (x2, y2), _BOX, line)
        if label:
            text = _ascii(label)
            (_, text_h), base = cv2.getTextSize(text, _FONT, scale, max(1, round(scale * 2)))
            above = y1 - text_h - base - 2 * max(2, round(text_h * 0.3))
            _text_box(out, text, x1, above if above >= 0 else y1, scale, _BOX)
    return out


def crop(image: Image, box: Box, margin: float = 0.15) -> Image:
    """The box grown by ``margin`` of its size on each side (at least 8 px), clipped."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    mx = max(8.0, (x2 - x1) * margin)
    my = max(8.0, (y2 - y1) * margin)
    left, top = int(max(0, np.floor(x1 - mx))), int(max(0, np.floor(y1 - my)))
    right = int(min(width, np.ceil(x2 + mx)))
    bottom = int(min(height, np.ceil(y2 + my)))
    if right <= left or bottom <= top:
        raise EvidenceError(f"box {list(box)} lies outside the {width}x{height} image")
    return image[top:bottom, left:right].copy()


# --- files ---------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")
_SAFE_ID = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]*$")


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class EvidenceStore:
    """Writes a camera's evidence under ``root/camera_id/YYYYMMDD/`` (UTC date) and returns
    references to it. Files appear whole: each is written aside and renamed into place."""

    def __init__(self, root: Path | str, camera_id: str, *, jpeg_quality: int = 90) -> None:
        if not _SAFE_ID.match(camera_id):
            raise ValueError(f"camera id {camera_id!r} is not safe as a directory name")
        self.root = Path(root)
        self.camera_id = camera_id
        self.jpeg_quality = jpeg_quality

    @property
    def directory(self) -> Path:
        return self.root / self.camera_id

    def path_for(self, name: str, kind: EvidenceKind, event_time: datetime, suffix: str) -> Path:
        """Where the ``kind`` evidence of alert or episode ``name`` goes."""
        day = event_time.astimezone(UTC).strftime("%Y%m%d")
        safe = _UNSAFE.sub("_", name).lstrip(".") or "_"
        return self.directory / day / f"{safe}-{kind.value}{suffix}"

    def write_snapshot(self, name: str, event_time: datetime, image: Image) -> EvidenceRef:
        """Write the (annotated) frame as the alert's snapshot."""
        return self._write_jpeg(name, EvidenceKind.SNAPSHOT, event_time, image)

    def write_crop(
        self, name: str, event_time: datetime, image: Image, box: Box, margin: float = 0.15
    ) -> EvidenceRef:
        """Write the box (with ``margin``) cut from the unannotated frame."""
        return self._write_jpeg(name, EvidenceKind.CROP, event_time, crop(image, box, margin))

    def _write_jpeg(
        self, name: str, kind: EvidenceKind, event_time: datetime, image: Image
    ) -> EvidenceRef:
        data = _encode_jpeg(image, self.jpeg_quality)
        path = self.path_for(name, kind, event_time, ".jpg")
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.stem + ".partial" + path.suffix)
        partial.write_bytes(data)
        os.replace(partial, path)
        return EvidenceRef(
            kind=kind,
            uri=path.resolve().as_uri(),
            content_type="image/jpeg",
            sha256=hashlib.sha256(data).hexdigest(),
        )

    def write_clip(
        self,
        name: str,
        event_time: datetime,
        frames: Sequence[BufferedFrame],
        fallback_fps: float = 5.0,
    ) -> EvidenceRef:
        """Write ``frames`` as MP4 (``mp4v``), or MJPEG AVI where MP4 cannot be written.

        The frame rate is taken from the frames' times, so the clip plays in real time
        whatever the detection rate was.
        """
        if not frames:
            raise EvidenceError(f"clip {name!r} has no frames")
        span_s = frames[-1].pts_s - frames[0].pts_s
        fps = (len(frames) - 1) / span_s if len(frames) > 1 and span_s > 0 else fallback_fps
        fps = min(max(fps, 1.0), 60.0)
        images = [f.image() for f in frames]
        height, width = images[0].shape[:2]
        for suffix, fourcc, content_type in (
            (".mp4", "mp4v", "video/mp4"),
            (".avi", "MJPG", "video/x-msvideo"),
        ):
            path = self.path_for(name, EvidenceKind.CLIP, event_time, suffix)
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.stem + ".partial" + path.suffix)
            writer = cv2.VideoWriter(
                str(partial), cv2.VideoWriter.fourcc(*fourcc), fps, (width, height)
            )
            if not writer.isOpened():
                log.warning("cannot write %s clips; trying the next format", fourcc)
                continue
            try:
                for image in images:
                    if image.shape[:2] != (height, width):
                        image = np.asarray(cv2.resize(image, (width, height)), dtype=np.uint8)
                    writer.write(image)
            finally:
                writer.release()
            if partial.exists() and partial.stat().st_size > 0:
                os.replace(partial, path)
                return EvidenceRef(
                    kind=EvidenceKind.CLIP,
                    uri=path.resolve().as_uri(),
                    content_type=content_type,
                    sha256=_sha256_of(path),
                )
            partial.unlink(missing_ok=True)
        raise EvidenceError(f"no video writer could write clip {name!r} (mp4v, MJPG)")

    def prune(
        self,
        *,
        max_bytes: int | None = None,
        max_age: timedelta | None = None,
        now: datetime | None = None,
    ) -> list[Path]:
        """:func:`prune` this camera's directory."""
        return prune(self.directory, max_bytes=max_bytes, max_age=max_age, now=now)


def prune(
    directory: Path | str,
    *,
    max_bytes: int | None = None,
    max_age: timedelta | None = None,
    now: datetime | None = None,
) -> list[Path]:
    """Delete files under ``directory``, oldest (by modification time) first, until none is
    older than ``max_age`` and all together take at most ``max_bytes``; then remove emptied
    day folders. Returns the deleted files, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    files = []
    for path in directory.rglob("*"):
        if path.is_file():
            stat = path.stat()
            files.append((stat.st_mtime, str(path), stat.st_size, path))
    files.sort()
    now_ts = (now or datetime.now(UTC)).timestamp()
    total = sum(size for _, _, size, _ in files)
    deleted = []
    for mtime, _, size, path in files:
        too_old = max_age is not None and now_ts - mtime > max_age.total_seconds()
        too_big = max_bytes is not None and total > max_bytes
        if not (too_old or too_big):
            break
        path.unlink(missing_ok=True)
        total -= size
        deleted.append(path)
    for folder in sorted((p for p in directory.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    return deleted


# --- clips ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClipReady:
    """A finished clip: publish an ``Evidence`` message with ``ref`` for alert ``name``."""

    name: str
    ref: EvidenceRef
    start_s: float
    end_s: float
    frames: int


@dataclass
class _PendingClip:
    name: str
    event_time: datetime
    end_s: float
    frames: list[BufferedFrame] = field(default_factory=list)


class ClipRecorder:
    """Cuts clips from ``before_s`` before a trigger to ``after_s`` after it.

    Call :meth:`push` with every processed frame and :meth:`trigger` when an alert starts;
    the clip is written by the :meth:`push` that reaches ``after_s`` past the trigger (or by
    :meth:`flush` when the source ends) and returned as a :class:`ClipReady`. At most
    ``max_pending`` clips record at once; a further trigger finishes the oldest early.
    """

    def __init__(
        self,
        store: EvidenceStore,
        *,
        before_s: float = 5.0,
        after_s: float = 5.0,
        ring: FrameRing | None = None,
        max_pending: int = 8,
    ) -> None:
        if before_s < 0 or after_s < 0:
            raise ValueError("before_s and after_s must be >= 0")
        self.store = store
        self.before_s = before_s
        self.after_s = after_s
        self.ring = ring or FrameRing(max_age_s=before_s + 2.0)
        if self.ring.max_age_s < before_s:
            raise ValueError(f"the ring keeps {self.ring.max_age_s}s, less than before_s")
        self.max_pending = max_pending
        self.failures = 0
        self._pending: dict[str, _PendingClip] = {}

    def push(self, frame: Frame) -> list[ClipReady]:
        """Buffer ``frame``; return the clips it completes."""
        newest = self.ring.newest
        restarted = newest is not None and frame.pts_s < newest.pts_s
        buffered = self.ring.push(frame)
        ready = []
        for clip in list(self._pending.values()):
            if restarted:  # the video clock went back: end the clip with what it has
                ready += self._finish(clip)
                continue
            if buffered.pts_s <= clip.end_s + _EPS_S:
                clip.frames.append(buffered)
            if buffered.pts_s >= clip.end_s - _EPS_S:
                ready += self._finish(clip)
        return ready

    def trigger(self, name: str, at_s: float, event_time: datetime) -> list[ClipReady]:
        """Start a clip for alert ``name`` at video time ``at_s`` (a repeat is ignored).

        Returns clips finished by this call: this one, if frames up to ``after_s`` past
        ``at_s`` are already buffered, or the oldest pending one, if too many record.
        """
        if name in self._pending:
            return []
        end_s = at_s + self.after_s
        start_s = at_s - self.before_s - _EPS_S
        frames = [f for f in self.ring.since(start_s) if f.pts_s <= end_s + _EPS_S]
        clip = _PendingClip(name, event_time, end_s, frames)
        ready = []
        if len(self._pending) >= self.max_pending:
            ready += self._finish(next(iter(self._pending.values())))
        self._pending[name] = clip
        newest = self.ring.newest
        if newest is not None and newest.pts_s >= end_s - _EPS_S:
            ready += self._finish(clip)
        return ready

    def flush(self) -> list[ClipReady]:
        """Finish every pending clip with the frames it has (the source ended)."""
        ready = []
        for clip in list(self._pending.values()):
            ready += self._finish(clip)
        return ready

    @property
    def pending(self) -> tuple[str, ...]:
        return tuple(self._pending)

    def _finish(self, clip: _PendingClip) -> list[ClipReady]:
        del self._pending[clip.name]
        if not clip.frames:
            log.warning("clip %s has no frames; not written", clip.name)
            self.failures += 1
            return []
        try:
            ref = self.store.write_clip(clip.name, clip.event_time, clip.frames)
        except (EvidenceError, OSError) as exc:
            log.warning(
                "clip %s of camera %s not written: %s", clip.name, self.store.camera_id, exc
            )
            self.failures += 1
            return []
        return [
            ClipReady(clip.name, ref, clip.frames[0].pts_s, clip.frames[-1].pts_s, len(clip.frames))
        ]
