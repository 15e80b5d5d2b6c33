"""Evidence reaches the center: a gateway's uploader (real thread, real HTTP) sends the files
its alerts reference to a live center, which serves them at the console's evidence URL,
also once the gateway's own copies are gone; logins are the gateway's broker account, and
an upload cut off resumes from the center's offset."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from citywatch.contracts import Alert, AlertKind, DeviceKind, DeviceRef, Evidence, Location, Phase
from citywatch.contracts.messages import EvidenceKind, EvidenceRef
from citywatch.edge.backoff import Backoff
from citywatch.edge.evidence_upload import UploadQueue
from citywatch.edge.evidence_upload_client import (
    CenterUploadClient,
    UploadFailed,
    UploadRefused,
)
from citywatch.edge.evidence_upload_worker import EvidenceUploader
from tests.center.conftest import auth, free_port, start_server
from tests.center.seed import insert_alert

pytestmark = [pytest.mark.integration, pytest.mark.service]

GATEWAY = "gw-cam-renmin"
PASSWORD = "gateway-password-0123456789"
CAMERA = DeviceRef(site="demo", kind=DeviceKind.CAMERA, id="cam-renmin-101")


@pytest.fixture(scope="module")
def settings(center_settings, tmp_path_factory):  # type: ignore[no-untyped-def]
    """The center with the gateways' secrets, as the embedded stack hands them over."""
    secrets = tmp_path_factory.mktemp("secrets")
    (secrets / GATEWAY).write_text(PASSWORD + "\n")
    return dataclasses.replace(center_settings, secrets_dir=secrets)


def gateway_file(folder: Path, name: str, data: bytes, kind: EvidenceKind) -> EvidenceRef:
    """A file in the gateway's own evidence store (a host the center cannot read)."""
    path = folder / name
    path.write_bytes(data)
    return EvidenceRef(kind=kind, uri=path.as_uri(), content_type="image/jpeg"
                       if kind is not EvidenceKind.CLIP else "video/mp4",
                       sha256=hashlib.sha256(data).hexdigest())  # fmt: skip


def client_for(
    url: str, password: str = PASSWORD, chunk_bytes: int = 64 * 1024
) -> CenterUploadClient:
    return CenterUploadClient(url, GATEWAY, lambda: password, chunk_bytes=chunk_bytes, timeout_s=5)


def wait_until(condition, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def uploader(tmp_path: Path) -> Iterator[EvidenceUploader]:
    port = free_port()
    made = EvidenceUploader(
        UploadQueue(tmp_path / "uploads.sqlite", budget_bytes=50 << 20),
        client_for(f"http://127.0.0.1:{port}"), Backoff(0.05, 0.4), idle_s=0.2,
    )  # fmt: skip
    yield made
    made.stop()


def test_evidence_queued_while_the_center_is_down_is_served_after_the_gateway_lost_it(
    settings, db, uploader: EvidenceUploader, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Center down: tries back off (capped); center up: snapshot and a 5-chunk clip arrive
    and the console's evidence URL serves them even after the gateway's files are gone."""
    folder = tmp_path / "gateway-host"
    folder.mkdir()
    snapshot = gateway_file(folder, "snap.jpg", b"\xff\xd8\xff\xe0" + b"boxes" * 100,
                            EvidenceKind.SNAPSHOT)  # fmt: skip
    clip_bytes = bytes(range(256)) * 1200  # 307,200 bytes: five 64 KiB chunks
    clip = gateway_file(folder, "clip.mp4", clip_bytes, EvidenceKind.CLIP)
    now = datetime.now(UTC)
    alert = Alert(
        id="up-1.a0.0", episode_id="up-1", seq=0, device=CAMERA, kind=AlertKind.ILLEGAL_PARKING,
        rule="test", phase=Phase.START, event_time=now, location=Location(zone="lane"),
        confidence=0.9, evidence=(snapshot,),
    )  # fmt: skip
    notice = Evidence(id="up-1.clip", device=CAMERA, alert_id=alert.id, ref=clip, event_time=now)
    insert_alert(db, alert_id=alert.id, device_id=CAMERA.id, device_kind="camera",
                 kind="illegal_parking", when=now, evidence=[snapshot.model_dump()])  # fmt: skip
    db.execute(
        "INSERT INTO evidence (id, alert_id, device_id, kind, uri, content_type, sha256,"
        " event_time) VALUES (%s, %s, %s, 'clip', %s, 'video/mp4', %s, %s)",
        (notice.id, alert.id, CAMERA.id, clip.uri, clip.sha256, now),
    )
    db.commit()

    uploader.enqueue_from([alert, notice])
    uploader.start()
    wait_until(lambda: uploader.stats.failures >= 4, 10, "tries against the stopped center")
    assert all(0.025 <= d <= 0.4 for d in uploader.delays)
    assert len(uploader.queue) == 2
    port = int(uploader.client.center_url.rsplit(":", 1)[1])
    live = start_server(settings, port)
    try:
        wait_until(lambda: len(uploader.queue) == 0, 20, "the queue to drain")
        assert (uploader.stats.uploaded, uploader.stats.bytes_sent) == (
            2,
            len(clip_bytes) + Path(folder / "snap.jpg").stat().st_size,
        )
        for path in folder.iterdir():
            path.unlink()  # the gateway rotated its store, or is offline: the center has them
        viewer = auth("viewer")
        got_snapshot = httpx.get(f"{live.url}/api/v1/alerts/{alert.id}/evidence/snapshot",
                                 headers=viewer)  # fmt: skip
        got_clip = httpx.get(f"{live.url}/api/v1/alerts/{alert.id}/evidence/clip", headers=viewer)
    finally:
        live.stop()
    assert got_snapshot.status_code == 200 and got_snapshot.headers["content-type"] == "image/jpeg"
    assert hashlib.sha256(got_snapshot.content).hexdigest() == snapshot.sha256
    assert (got_clip.status_code, got_clip.content) == (200, clip_bytes)


def test_logins_are_the_gateways_and_a_cut_off_upload_resumes(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A wrong password is refused (401); half a file sent by hand is completed from its
    offset; bytes that do not match their hash are refused for good (422)."""
    data = b"evidence bytes " * 20_000
    path = tmp_path / "crop.jpg"
    path.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    live = start_server(settings)
    try:
        with pytest.raises(UploadFailed, match="refused the gateway's login"):
            client_for(live.url, password="wrong").upload(path, sha)
        login = base64.b64encode(f"{GATEWAY}:{PASSWORD}".encode()).decode()
        half = httpx.patch(
            f"{live.url}/ingest/v1/evidence/{sha}", content=data[:100_000],
            headers={"Authorization": f"Basic {login}", "Upload-Offset": "0",
                     "Upload-Length": str(len(data))},
        )  # fmt: skip
        assert (half.status_code, half.headers["upload-offset"]) == (204, "100000")
        assert client_for(live.url).upload(path, sha) == len(data) - 100_000
        head = httpx.head(f"{live.url}/ingest/v1/evidence/{sha}",
                          headers={"Authorization": f"Basic {login}"})  # fmt: skip
        assert (head.headers["upload-offset"], head.headers["upload-complete"]) == (
            str(len(data)),
            "?1",
        )
        forged = tmp_path / "forged.jpg"
        forged.write_bytes(b"x" * 1000)
        with pytest.raises(UploadRefused, match="422"):
            client_for(live.url).upload(forged, hashlib.sha256(b"other").hexdigest())
    finally:
        live.stop()
