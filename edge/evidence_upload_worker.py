"""The gateway's evidence uploader: a thread that sends what the upload queue holds to the
center, with capped, jittered backoff while the center cannot be reached.

The gateway's session hands it every alert and evidence notice it publishes
(:meth:`EvidenceUploader.enqueue_from`); the files they reference are queued on disk
(:mod:`citywatch.edge.evidence_upload`) and uploaded oldest first. A failed try (network,
the center down or busy, a login refused) waits with backoff and keeps the file; a file the
center refuses for good (too large, bytes no longer matching the hash) or one pruned from
the gateway's disk leaves the queue with a warning. Uploading never holds up detection or
the MQTT session.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from citywatch.config.devices import Gateway
from citywatch.config.secrets import resolve_secret
from citywatch.contracts import Alert, Evidence
from citywatch.contracts.messages import EvidenceRef, WireModel
from citywatch.edge.backoff import Backoff
from citywatch.edge.evidence_upload import Pending, UploadQueue
from citywatch.edge.evidence_upload_client import CenterUploadClient, UploadFailed, UploadRefused

__all__ = ["EvidenceUploader", "UploadStats", "evidence_uploader"]

log = logging.getLogger(__name__)


@dataclass
class UploadStats:
    uploaded: int = 0
    bytes_sent: int = 0
    failures: int = 0
    given_up: int = 0


class EvidenceUploader:
    """Uploads queued evidence files on a thread of its own (:meth:`start` / :meth:`stop`)."""

    def __init__(
        self,
        queue: UploadQueue,
        client: CenterUploadClient,
        backoff: Backoff,
        *,
        clock: Callable[[], float] = time.time,
        idle_s: float = 5.0,
    ) -> None:
        self.queue, self.client, self.backoff = queue, client, backoff
        self.stats = UploadStats()
        self.delays: list[float] = []
        """Backoff waits after failed tries, newest last (for tests and diagnosis)."""
        self._clock = clock
        self._idle_s = idle_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def enqueue(self, refs: Sequence[EvidenceRef]) -> None:
        """Queue files for upload; a queue that cannot be written (disk full, closed) is
        logged and never fails the publishing of the alert that named them."""
        try:
            added = self.queue.add(refs, self._clock())
        except (sqlite3.Error, OSError) as exc:
            log.error("evidence upload queue %s: %s; %d file(s) not queued for upload (they"
                      " stay on this gateway)", self.queue.path, exc, len(refs))  # fmt: skip
            return
        if added:
            self._wake.set()

    def enqueue_from(self, messages: Sequence[WireModel]) -> None:
        """Queue the files of every alert and evidence notice among ``messages``."""
        refs: list[EvidenceRef] = []
        for message in messages:
            if isinstance(message, Alert):
                refs.extend(message.evidence)
            elif isinstance(message, Evidence):
                refs.append(message.ref)
        if refs:
            self.enqueue(refs)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._main, name="evidence-upload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the request in flight (what is left stays queued on disk)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.client.timeout_s + 5)
            self._thread = None
        self.queue.close()

    def _main(self) -> None:
        while not self._stop.is_set():
            wait_s = self.run_once()
            self._wake.wait(wait_s)
            self._wake.clear()

    def run_once(self) -> float:
        """Upload what is due, until a try fails; how long to wait before the next round."""
        while not self._stop.is_set():
            due = self.queue.due(self._clock(), limit=1)
            if not due:
                next_at = self.queue.next_due_at()
                return self._idle_s if next_at is None else max(0.05, next_at - self._clock())
            if not self._send(due[0]):
                return self.delays[-1]
        return 0.0

    def _send(self, item: Pending) -> bool:
        """One file; False when the try failed and the round should wait."""
        if not item.path.is_file():
            self.stats.given_up += 1
            self.queue.give_up(item, "the file is gone (pruned from the evidence store)")
            return True
        try:
            self.stats.bytes_sent += self.client.upload(item.path, item.sha256)
        except UploadRefused as refused:
            self.stats.given_up += 1
            self.queue.give_up(item, str(refused))
            return True
        except UploadFailed as failed:
            self.stats.failures += 1
            delay = self.backoff.next_delay()
            self.delays.append(delay)
            del self.delays[:-100]
            self.queue.retry_later(item.sha256, self._clock() + delay, str(failed))
            log.warning("evidence upload of %s failed: %s; next try in %.1f s", item.path,
                        failed, delay)  # fmt: skip
            return False
        self.backoff.reset()
        self.stats.uploaded += 1
        self.queue.done(item.sha256)
        log.debug("evidence %s uploaded", item.path)
        return True


def evidence_uploader(
    gateway: Gateway, secrets_dir: Path | None, data_dir: Path
) -> EvidenceUploader | None:
    """The uploader of a gateway's config (None when it does not upload)."""
    section = gateway.evidence_upload
    if section is None:
        return None
    queue_path = Path(section.queue_path or data_dir / f"uploads-{gateway.id}.sqlite")
    client = CenterUploadClient(
        center_url=section.center_url,
        username=gateway.username,
        password=partial(resolve_secret, gateway.credentials.password, secrets_dir),
        chunk_bytes=section.chunk_kb * 1024,
        timeout_s=section.timeout_s,
        ca_file=section.ca_file,
    )
    backoff = Backoff(section.retry_min.total_seconds(), section.retry_max.total_seconds())
    return EvidenceUploader(UploadQueue(queue_path, section.budget_bytes), client, backoff)
