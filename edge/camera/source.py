"""A camera's frames for the camera loop: live sources reconnect, files just end.

The I/O shell around :class:`~citywatch.hardware.camera.video_source.VideoSource`. A live stream
that cannot be opened or stops delivering is reopened after a capped exponential backoff
with jitter (:class:`~citywatch.edge.backoff.Backoff`), logged once per outage with the
camera id and once on recovery; ``pts_s`` keeps increasing across the gap. A stop
:class:`threading.Event` ends the loop within one backoff wait or one read timeout.

Each failed open or lost stream is an error handed to ``on_error`` with its reason: for a
failed open, what the server itself says when asked (refused, 404, 401, no answer; see
:mod:`~citywatch.edge.camera.stream_probe`), so the camera's status tells the operator why.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

from citywatch.edge.backoff import Backoff
from citywatch.edge.camera.stream_probe import why_unreachable
from citywatch.hardware.camera.frames import Frame
from citywatch.hardware.camera.video_source import (
    SourceOpenError,
    SourceStats,
    StreamLost,
    VideoSource,
)

__all__ = ["ReconnectingSource"]

log = logging.getLogger(__name__)


class ReconnectingSource:
    """Frames from one camera until ``stop`` is set (or a file ends, unless ``loop``).

    Files fail fast: a missing, unreadable or corrupt file raises its
    :class:`~citywatch.hardware.camera.video_source.VideoSourceError` to the caller, since waiting
    will not mend it. Live streams never give up; each outage costs one warning.
    """

    def __init__(
        self,
        source: VideoSource,
        *,
        camera_id: str,
        stop: threading.Event | None = None,
        backoff: Backoff | None = None,
        loop: bool = False,
        monotonic: Callable[[], float] = time.monotonic,
        on_error: Callable[[str], None] | None = None,
        probe: Callable[[str], str] = why_unreachable,
    ) -> None:
        """``on_error`` hears each failed open and lost stream, with its reason; ``probe``
        asks a live server why it did not open."""
        self.source = source
        self.camera_id = camera_id
        self.stop = stop or threading.Event()
        self.backoff = backoff or Backoff(min_s=1.0, max_s=30.0)
        self.loop = loop
        self.failed_attempts = 0
        """Opens that failed, over the source's life."""
        self._monotonic = monotonic
        self._outage_since: float | None = None
        self._on_error = on_error
        self._probe = probe
        self.reason: str | None = None
        """Why there is no video, while in an outage."""

    @property
    def stats(self) -> SourceStats:
        return self.source.stats

    @property
    def in_outage(self) -> bool:
        return self._outage_since is not None

    def frames(self) -> Iterator[Frame]:
        """Yield frames at the source's detection rate; the source is closed at the end."""
        try:
            while not self.stop.is_set():
                if not self.source.is_open and not self._open():
                    continue
                try:
                    frame = self.source.read()
                except StreamLost as exc:
                    self.source.close()
                    self._lost(str(exc))
                    continue
                if frame is None:  # a file's normal end
                    if not self.loop:
                        return
                    self.source.open()
                    continue
                yield frame
        finally:
            self.source.close()

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    def _open(self) -> bool:
        """Open the source; False after a failed live attempt (having waited its backoff)."""
        try:
            self.source.open()
        except SourceOpenError as exc:
            if not self.source.is_live:
                raise
            self.failed_attempts += 1
            self._lost(self._probe(self.source.url) or str(exc))
            return False
        if self._outage_since is not None:
            log.info(
                "camera %s: video back after %.1f s (%d failed attempts)",
                self.camera_id,
                self._monotonic() - self._outage_since,
                self.backoff.attempts,
            )
            self._outage_since = None
            self.reason = None
        self.backoff.reset()
        return True

    def _lost(self, reason: str) -> None:
        """Note the outage (a warning at its start, info on each change of reason), tell
        ``on_error``, and wait the next backoff delay."""
        changed = reason != self.reason
        self.reason = reason
        if self._on_error is not None:
            self._on_error(reason)
        if self._outage_since is None:
            self._outage_since = self._monotonic()
            log.warning(
                "camera %s: no video (%s); reconnecting with backoff up to %g s",
                self.camera_id,
                reason,
                self.backoff.max_s,
            )
        elif changed:
            log.info("camera %s: still no video, now: %s", self.camera_id, reason)
        else:
            log.debug("camera %s: still no video (%s)", self.camera_id, reason)
        self.stop.wait(self.backoff.next_delay())
