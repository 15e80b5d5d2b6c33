"""Clips recorded off the camera thread: a :class:`~citywatch.edge.camera.clips.ClipRecorder` run by
one worker thread per camera, fed through a bounded queue.

Encoding ring frames as JPEG (at ``clip_fps``) and writing clips (decode the ring, encode
MP4: a few hundred milliseconds each) cost the camera thread about a millisecond per detected
frame when done inline. Here the camera thread only downscales and enqueues; the worker
runs the recorder's calls in the order they were made, so a clip holds exactly the frames
it would have held inline. ``cv2`` releases the GIL while it encodes, so the worker uses a
second core.

The queue is bounded in frames and bytes: when the worker falls behind (a clip being written
holds it up for a few hundred milliseconds), a new frame is dropped and counted
(``frames_dropped``) rather than blocking the camera thread or growing memory.
Triggers are never dropped (one per episode start, and the recorder bounds its pending clips).
The worker runs at a lower CPU priority where the OS allows, so on a busy gateway the
detector goes first and the worker uses what it leaves.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime

from citywatch.edge.camera.clips import ClipReady, ClipRecorder
from citywatch.edge.camera.evidence import EvidenceError
from citywatch.hardware.camera.frames import Frame

__all__ = ["ClipWorker", "ClipWorkerClosed"]

log = logging.getLogger(__name__)

NICENESS = 5
"""Added to the worker thread's nice value (Linux: per thread): the detector goes first."""


class ClipWorkerClosed(RuntimeError):
    """The worker was closed; nothing more can be recorded."""


@dataclass(frozen=True, slots=True)
class _Push:
    frame: Frame


@dataclass(frozen=True, slots=True)
class _Trigger:
    name: str
    at_s: float
    event_time: datetime


@dataclass(frozen=True, slots=True)
class _Flush:
    done: threading.Event


_Job = _Push | _Trigger | _Flush


class ClipWorker:
    """The :class:`ClipRecorder` interface (``push``, ``trigger``, ``flush``), non-blocking.

    Each call returns the clips finished since the last call, by the worker; :meth:`flush`
    waits for the queued work and the pending clips. Frames handed to :meth:`push` must not
    be changed afterwards (the caller passes a copy or a fresh downscaled image).
    """

    def __init__(
        self,
        recorder: ClipRecorder,
        *,
        max_queued_frames: int = 32,
        max_queued_bytes: int = 32 * 1024 * 1024,
        name: str = "clips",
        niceness: int = NICENESS,
    ) -> None:
        if max_queued_frames < 1 or max_queued_bytes < 1:
            raise ValueError("max_queued_frames and max_queued_bytes must be positive")
        self.recorder = recorder
        self.max_queued_frames = max_queued_frames
        self.max_queued_bytes = max_queued_bytes
        self.niceness = niceness
        self.frames_dropped = 0
        self.errors = 0
        self._jobs: deque[_Job] = deque()
        self._queued_frames = 0
        self._queued_bytes = 0
        self._ready: list[ClipReady] = []
        self._cond = threading.Condition()
        self._closed = False
        self._dropping = False
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    # -- the camera thread's side -----------------------------------------------------------
    def push(self, frame: Frame) -> list[ClipReady]:
        """Queue ``frame`` for the ring, or drop it (counted) if the queue is full."""
        with self._cond:
            self._check_open()
            nbytes = frame.image.nbytes
            if self._queued_frames >= self.max_queued_frames or (
                self._queued_frames and self._queued_bytes + nbytes > self.max_queued_bytes
            ):
                self.frames_dropped += 1
                if not self._dropping:
                    log.warning(
                        "clip worker %s is behind: dropping ring frames (%d so far)",
                        self._thread.name,
                        self.frames_dropped,
                    )
                self._dropping = True
            else:
                self._dropping = False
                self._queued_frames += 1
                self._queued_bytes += nbytes
                self._jobs.append(_Push(frame))
                self._cond.notify()
            return self._take_ready()

    def trigger(self, name: str, at_s: float, event_time: datetime) -> list[ClipReady]:
        """Queue a clip for alert ``name`` at video time ``at_s`` (never dropped)."""
        with self._cond:
            self._check_open()
            self._jobs.append(_Trigger(name, at_s, event_time))
            self._cond.notify()
            return self._take_ready()

    def ready(self) -> list[ClipReady]:
        """The clips the worker finished since the last call."""
        with self._cond:
            return self._take_ready()

    def flush(self, timeout_s: float = 10.0) -> list[ClipReady]:
        """Finish the queued work and every pending clip (the source ended); wait at most
        ``timeout_s``. What is not done by then is left to the worker and logged."""
        done = threading.Event()
        with self._cond:
            self._check_open()
            self._jobs.append(_Flush(done))
            self._cond.notify()
        if not done.wait(timeout_s):
            log.warning(
                "clip worker %s did not finish its clips within %.0f s; they may be lost",
                self._thread.name,
                timeout_s,
            )
        return self.ready()

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the worker. Queued frames and pending clips are abandoned (call
        :meth:`flush` first to keep them)."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            abandoned = len(self._jobs)
            self._jobs.clear()
            self._queued_frames = self._queued_bytes = 0
            self._cond.notify()
        if abandoned or self.recorder.pending:
            log.info(
                "clip worker %s closed: %d queued jobs and %d pending clips abandoned",
                self._thread.name,
                abandoned,
                len(self.recorder.pending),
            )
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)

    @property
    def queued_frames(self) -> int:
        return self._queued_frames

    @property
    def pending(self) -> tuple[str, ...]:
        """Clips recording in the worker (not counting triggers still queued)."""
        return self.recorder.pending

    def _check_open(self) -> None:
        if self._closed:
            raise ClipWorkerClosed(f"clip worker {self._thread.name} is closed")

    def _take_ready(self) -> list[ClipReady]:
        ready, self._ready = self._ready, []
        return ready

    # -- the worker thread ------------------------------------------------------------------
    def _main(self) -> None:
        self._lower_priority()
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                job = self._jobs.popleft()
                if isinstance(job, _Push):
                    self._queued_frames -= 1
                    self._queued_bytes -= job.frame.image.nbytes
            finished = self._run(job)
            with self._cond:
                self._ready += finished
            if isinstance(job, _Flush):
                job.done.set()

    def _run(self, job: _Job) -> list[ClipReady]:
        # The loop's boundary: a frame that does not encode or a clip that fails must not
        # stop the camera's evidence; the recorder counts its own write failures.
        try:
            if isinstance(job, _Push):
                return self.recorder.push(job.frame)
            if isinstance(job, _Trigger):
                return self.recorder.trigger(job.name, job.at_s, job.event_time)
            return self.recorder.flush()
        except EvidenceError as exc:
            self.errors += 1
            log.error("clip worker %s: %s failed: %s", self._thread.name, type(job).__name__, exc)
        except Exception:
            self.errors += 1
            log.exception("clip worker %s: %s failed", self._thread.name, type(job).__name__)
        return []

    def _lower_priority(self) -> None:
        if self.niceness <= 0 or not hasattr(os, "setpriority"):
            return
        try:  # Linux applies a thread id's nice value to that thread alone
            tid = threading.get_native_id()
            nice = os.getpriority(os.PRIO_PROCESS, tid) + self.niceness
            os.setpriority(os.PRIO_PROCESS, tid, nice)
        except OSError as exc:
            log.debug("clip worker %s keeps its priority: %s", self._thread.name, exc)
