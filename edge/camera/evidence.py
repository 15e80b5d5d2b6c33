"""Evidence for camera alerts: snapshots, crops and clips kept on the gateway.

An alert carries references (``file://`` URI, content type, SHA-256) to evidence written
here, never the bytes. The pieces, in the order a camera loop uses them:

* :class:`~citywatch.edge.camera.frame_ring.FrameRing` keeps the last seconds of processed frames
  as JPEG, bounded by age, count and bytes, so a clip can start *before* the alert did;
* :class:`~citywatch.edge.camera.frame_ring.BestFrame` keeps, per episode, the most confident frame
  and box seen;
* :func:`~citywatch.edge.camera.annotate.annotate` draws the zones, the box and an ASCII label on
  that frame;
* :class:`EvidenceStore` (here) writes snapshot, clean frame and crop JPEGs and clips under
  ``root/camera/YYYYMMDD/<name>-<kind>.<ext>``;
* :class:`~citywatch.edge.camera.clips.ClipRecorder` is fed every frame and, ``after_s`` after a
  trigger, writes the clip and hands back its reference (the caller then publishes an
  ``Evidence`` message);
* :class:`~citywatch.edge.camera.clip_worker.ClipWorker` runs that recorder on a thread of its own
  for the live agent, so encoding never holds up detection (ring frames are dropped and
  counted when it falls behind);
* :func:`prune` (here) deletes the oldest files first so that a gateway's disk never fills.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np

from citywatch.contracts.messages import EvidenceKind, EvidenceRef
from citywatch.models.detections import Image

if TYPE_CHECKING:  # only for the type: the ring itself encodes with this module
    from citywatch.edge.camera.frame_ring import BufferedFrame

__all__ = ["Box", "EvidenceError", "EvidenceStore", "crop", "encode_jpeg", "prune"]

log = logging.getLogger(__name__)

Box = Sequence[float]
"""An xyxy box in pixels."""


class EvidenceError(RuntimeError):
    """Evidence could not be encoded or written."""


def encode_jpeg(image: Image, quality: int) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise EvidenceError(f"cannot encode a {image.shape} image as JPEG")
    return bytes(data.tobytes())


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

CLIP_FORMATS = (
    (".webm", "VP80", "video/webm"),
    (".mp4", "mp4v", "video/mp4"),
    (".avi", "MJPG", "video/x-msvideo"),
)
"""(suffix, fourcc, content type) of the clip formats, in the order tried after the chosen one."""

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

    def __init__(
        self,
        root: Path | str,
        camera_id: str,
        *,
        jpeg_quality: int = 90,
        clip_format: Literal["webm", "mp4"] = "webm",
    ) -> None:
        if not _SAFE_ID.match(camera_id):
            raise ValueError(f"camera id {camera_id!r} is not safe as a directory name")
        self.root = Path(root)
        self.camera_id = camera_id
        self.jpeg_quality = jpeg_quality
        self.clip_format = clip_format

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

    def write_frame(self, name: str, event_time: datetime, image: Image) -> EvidenceRef:
        """Write the frame as the camera saw it, nothing drawn: the training image of the
        learning loop (the alert's normalised box labels it)."""
        return self._write_jpeg(name, EvidenceKind.FRAME, event_time, image)

    def write_crop(
        self, name: str, event_time: datetime, image: Image, box: Box, margin: float = 0.15
    ) -> EvidenceRef:
        """Write the box (with ``margin``) cut from the unannotated frame."""
        return self._write_jpeg(name, EvidenceKind.CROP, event_time, crop(image, box, margin))

    def _write_jpeg(
        self, name: str, kind: EvidenceKind, event_time: datetime, image: Image
    ) -> EvidenceRef:
        data = encode_jpeg(image, self.jpeg_quality)
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
        """Write ``frames`` in the store's ``clip_format`` (WebM VP8, which browsers play, or
        MP4 ``mp4v``, cheaper to encode), else the other one, else MJPEG AVI: whichever
        this machine's OpenCV can write first.

        The frame rate is taken from the frames' times, so the clip plays in real time
        whatever the detection rate was.
        """
        if not frames:
            raise EvidenceError(f"clip {name!r} has no frames")
        span_s = frames[-1].pts_s - frames[0].pts_s
        fps = (len(frames) - 1) / span_s if len(frames) > 1 and span_s > 0 else fallback_fps
        fps = min(max(fps, 1.0), 60.0)
        # Decoded one at a time while writing: a clip of 5 s at 25 fps would take ~120 MB
        # as decoded frames, more than the rest of a camera's agent.
        height, width = frames[0].image().shape[:2]
        for suffix, fourcc, content_type in sorted(
            CLIP_FORMATS, key=lambda f: f[0] != f".{self.clip_format}"
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
                for frame in frames:
                    image = frame.image()
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
        raise EvidenceError(f"no video writer could write clip {name!r} (VP80, mp4v, MJPG)")

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
