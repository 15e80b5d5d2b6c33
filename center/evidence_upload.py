"""The center's store of evidence gateways upload: resumable, hash-checked, kept by SHA-256.

A gateway announces each file by reference (``file://`` on the gateway, with its SHA-256) in
an alert or an evidence notice, and uploads the bytes here (:mod:`.routes_ingest`). A file is
stored under its SHA-256, so the reference the alert already carries finds it: the console's
evidence URL serves the uploaded copy whatever host the ``file://`` named, and keeps serving
it while the gateway is offline.

An upload is appended chunk by chunk at an offset (tus-like): a cut-off upload resumes where
the partial file ends. When the last byte arrives the file's SHA-256 is checked against the
name it was uploaded under; a mismatch deletes the partial file (the gateway starts over), a
match moves it into place atomically. Plain blocking file I/O: callers run it in a thread.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from citywatch.center import evidence_files
from citywatch.center.evidence_files import EvidenceRef, LocalFile
from citywatch.center.settings import CenterSettings

log = logging.getLogger(__name__)

SHA256 = re.compile(r"^[0-9a-f]{64}$")


class UploadError(Exception):
    """An upload request the store refuses; ``status_code`` is the HTTP answer."""

    status_code = 400


class OffsetMismatch(UploadError):
    """The chunk does not start where the stored part ends (the gateway asks and resumes)."""

    status_code = 409

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class TooLarge(UploadError):
    status_code = 413


class HashMismatch(UploadError):
    """The complete file's SHA-256 is not the one it was uploaded under."""

    status_code = 422


@dataclass(frozen=True)
class Progress:
    offset: int
    """Bytes stored so far (the full length once complete)."""
    complete: bool


class UploadStore:
    """Uploaded evidence under ``root``: ``sha256/ab/<hex>`` complete, ``partial/<hex>``
    in progress."""

    def __init__(self, root: Path, max_file_bytes: int) -> None:
        self.root = root
        self.max_file_bytes = max_file_bytes

    def path_of(self, sha256: str) -> Path:
        """Where the complete file of ``sha256`` is (or will be)."""
        return self.root / "sha256" / sha256[:2] / sha256

    def _partial(self, sha256: str) -> Path:
        return self.root / "partial" / sha256

    @staticmethod
    def check_name(sha256: str) -> str:
        name = sha256.lower()
        if not SHA256.match(name):
            raise UploadError(f"{sha256!r} is not a SHA-256 (64 hex digits)")
        return name

    def progress(self, sha256: str) -> Progress:
        """How much of ``sha256`` is stored."""
        sha256 = self.check_name(sha256)
        done = self.path_of(sha256)
        if done.is_file():
            return Progress(done.stat().st_size, True)
        partial = self._partial(sha256)
        return Progress(partial.stat().st_size if partial.is_file() else 0, False)

    def append(self, sha256: str, offset: int, length: int, chunks: Iterable[bytes]) -> Progress:
        """Append ``chunks`` at ``offset`` of the ``length``-byte file ``sha256``; checks and
        moves it into place when complete. Raises :class:`OffsetMismatch` when ``offset`` is
        not where the stored part ends, :class:`TooLarge` past the limit or the length, and
        :class:`HashMismatch` for a complete file with other content."""
        sha256 = self.check_name(sha256)
        if length > self.max_file_bytes:
            raise TooLarge(
                f"the file is {length} bytes; the center takes at most {self.max_file_bytes}"
                " (center.evidence_upload.max_file_mb)"
            )
        now = self.progress(sha256)
        if now.complete:
            return now  # a resend after a lost answer: already stored
        if offset != now.offset:
            raise OffsetMismatch(
                f"the stored part ends at byte {now.offset}, not {offset}: resume from there",
                now.offset,
            )
        partial = self._partial(sha256)
        partial.parent.mkdir(parents=True, exist_ok=True)
        written = offset
        with partial.open("ab") as file:
            for chunk in chunks:
                written += len(chunk)
                if written > length:
                    file.truncate(offset)
                    raise TooLarge(f"the chunk goes past the announced length ({length} bytes)")
                file.write(chunk)
            file.flush()
            os.fsync(file.fileno())
        if written < length:
            return Progress(written, False)
        return self._finish(sha256, partial)

    def _finish(self, sha256: str, partial: Path) -> Progress:
        with partial.open("rb") as file:
            actual = hashlib.file_digest(file, "sha256").hexdigest()
        if actual != sha256:
            partial.unlink(missing_ok=True)
            raise HashMismatch(
                f"the uploaded bytes have SHA-256 {actual[:12]}…, not {sha256[:12]}…: the file"
                " changed on the gateway or was corrupted on the way; upload it again"
            )
        done = self.path_of(sha256)
        done.parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial, done)
        size = done.stat().st_size
        log.info("evidence %s… stored (%d bytes)", sha256[:12], size)
        return Progress(size, True)


def store_of(settings: CenterSettings) -> UploadStore | None:
    """The upload store: ``center.evidence_upload.store_dir``, else ``uploads/`` in the last
    evidence root (the embedded stack's ``<data dir>/evidence``); None when there is neither."""
    section = settings.config.center.evidence_upload
    root = section.store_dir
    if root is None and settings.evidence_roots:
        root = settings.evidence_roots[-1] / "uploads"
    return UploadStore(root, section.max_file_bytes) if root is not None else None


def locate(ref: EvidenceRef, settings: CenterSettings) -> LocalFile:
    """Where the bytes of ``ref`` are: its uploaded copy (found by its SHA-256) when there is
    one, else the file its URI names under the evidence roots (:func:`.evidence_files.locate`,
    whose errors it raises)."""
    store = store_of(settings)
    if store is not None and ref.sha256 and SHA256.match(ref.sha256.lower()):
        uploaded = store.path_of(ref.sha256.lower())
        if uploaded.is_file():
            return LocalFile(uploaded.resolve())
    return evidence_files.locate(ref.uri, settings.evidence_roots)
