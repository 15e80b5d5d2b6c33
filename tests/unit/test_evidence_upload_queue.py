"""The gateway's upload queue: one row per file, kept across restarts, and over its disk
budget the oldest clips leave first, then the oldest images, each logged."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

from citywatch.contracts.messages import EvidenceKind, EvidenceRef
from citywatch.edge.backoff import Backoff
from citywatch.edge.evidence_upload import UploadQueue
from citywatch.edge.evidence_upload_client import CenterUploadClient
from citywatch.edge.evidence_upload_worker import EvidenceUploader


def evidence(tmp_path: Path, name: str, kind: EvidenceKind, size: int) -> EvidenceRef:
    path = tmp_path / "store" / name
    path.parent.mkdir(exist_ok=True)
    data = name.encode() * (size // len(name)) + b"." * (size % len(name))
    path.write_bytes(data)
    return EvidenceRef(kind=kind, uri=path.as_uri(), sha256=hashlib.sha256(data).hexdigest())


def test_a_file_named_twice_is_queued_once_and_survives_a_restart(tmp_path: Path) -> None:
    """The queue is keyed by SHA-256 and on disk; a ref without a hash or file is skipped."""
    ref = evidence(tmp_path, "a.jpg", EvidenceKind.SNAPSHOT, 100)
    queue = UploadQueue(tmp_path / "q.sqlite", budget_bytes=10_000)
    no_hash = EvidenceRef(kind=EvidenceKind.CROP, uri=ref.uri)
    remote = EvidenceRef(kind=EvidenceKind.CROP, uri="https://x/y.jpg", sha256="0" * 64)
    assert queue.add([ref, ref, no_hash, remote], now=1.0) == 1
    assert queue.add([ref], now=2.0) == 0
    queue.close()
    reopened = UploadQueue(tmp_path / "q.sqlite", budget_bytes=10_000)
    [pending] = reopened.due(now=5.0)
    assert (pending.sha256, pending.size, pending.kind) == (ref.sha256, 100, "snapshot")
    reopened.retry_later(pending.sha256, at=50.0, error="center down")
    assert reopened.due(now=10.0) == [] and reopened.next_due_at() == 50.0
    reopened.done(pending.sha256)
    assert len(reopened) == 0


def test_over_budget_the_oldest_clips_go_first_then_the_oldest_images(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Budget 1000 B: new files push out the clips, oldest first (a new clip too: images
    outrank clips), then the oldest image; every drop is a warning naming the file."""
    queue = UploadQueue(tmp_path / "q.sqlite", budget_bytes=1000)
    snap1 = evidence(tmp_path, "snap1.jpg", EvidenceKind.SNAPSHOT, 200)
    clip1 = evidence(tmp_path, "clip1.mp4", EvidenceKind.CLIP, 300)
    clip2 = evidence(tmp_path, "clip2.mp4", EvidenceKind.CLIP, 300)
    snap2 = evidence(tmp_path, "snap2.jpg", EvidenceKind.SNAPSHOT, 200)
    for t, ref in enumerate([snap1, clip1, clip2, snap2]):
        queue.add([ref], now=float(t))
    assert queue.pending_bytes() == 1000 and not queue.dropped
    with caplog.at_level(logging.WARNING, logger="citywatch.edge.evidence_upload"):
        queue.add([evidence(tmp_path, "snap3.jpg", EvidenceKind.SNAPSHOT, 250)], now=10.0)
        assert [d.path.name for d in queue.dropped] == ["clip1.mp4"]
        queue.add([evidence(tmp_path, "clip3.mp4", EvidenceKind.CLIP, 400)], now=11.0)
        assert [d.path.name for d in queue.dropped][1:] == ["clip2.mp4", "clip3.mp4"]
        queue.add([evidence(tmp_path, "snap4.jpg", EvidenceKind.SNAPSHOT, 400)], now=12.0)
        assert [d.path.name for d in queue.dropped][3:] == ["snap1.jpg"]
    assert queue.pending_bytes() == 850
    assert sorted(p.path.name for p in queue.due(now=99.0)) == ["snap2.jpg", "snap3.jpg",
                                                                 "snap4.jpg"]  # fmt: skip
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 4 and all("will not be uploaded" in m for m in messages)
    assert "clip1.mp4" in messages[0] and "snap1.jpg" in messages[3]


def test_a_queue_that_cannot_be_written_never_fails_the_publisher(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """After the queue closed (the session stopping), queuing logs an error and returns."""
    queue = UploadQueue(tmp_path / "q.sqlite", budget_bytes=1000)
    client = CenterUploadClient("http://127.0.0.1:9", "gw", lambda: "pw")
    uploader = EvidenceUploader(queue, client, Backoff(0.1, 1))
    queue.close()
    with caplog.at_level(logging.ERROR, logger="citywatch.edge.evidence_upload_worker"):
        uploader.enqueue([evidence(tmp_path, "late.jpg", EvidenceKind.SNAPSHOT, 10)])
    assert "not queued for upload" in caplog.text
