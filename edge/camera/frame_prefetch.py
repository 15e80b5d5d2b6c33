"""Read a camera's next frames on a thread of their own while the camera thread detects.

Decoding a 1280×720 frame (or rendering a synthetic one) costs a few milliseconds that the
camera thread used to spend before every detection. OpenCV's decoder and onnxruntime both
release the GIL, so with the reading on its own thread the two overlap: the detector
starts on frame N+1 as soon as it is done with frame N (Frigate's decode processes and
DeepStream's pipelined elements do the same). The queue between them is short, so at most
``depth`` decoded frames wait (memory stays bounded) and a slow detector slows the reader
instead of piling frames up; what a live source does meanwhile (its own buffer, a dropped
connection, the reconnect with backoff) is unchanged, because the reader runs the same
:class:`~citywatch.edge.camera.source.ReconnectingSource` iterator the camera thread ran.

An error the source raises (a missing or corrupt file) reaches the camera thread at the
frame where it happened, as if it had read the frame itself.

A live camera does not wait for its viewer: with ``keep_latest`` the reader never blocks,
it drops the oldest waiting frame instead (counted in :attr:`Prefetch.dropped`; the camera's
``dropped_frames`` telemetry already counts decoded frames that were not processed). The
stream is drained at its own rate, so the socket and decoder buffers never back up and the
detector always gets the freshest frame, however slow it is. Files and rendered scenes keep
every frame: there, waiting is free and a skipped frame would change the result.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

__all__ = ["Prefetch"]

T = TypeVar("T")
_POLL_S = 0.1


class _End:
    """The reader's last item: the source ended, or raised ``error``."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class Prefetch(Generic[T]):
    """Iterate ``items`` on a daemon thread, ``depth`` items ahead of the consumer.

    Use as an iterator in a ``with`` block (or call :meth:`close`): leaving early stops the
    reader after the item it is on and runs the source's own clean-up on the reader thread.
    """

    def __init__(
        self, items: Iterable[T], depth: int = 2, name: str = "prefetch", keep_latest: bool = False
    ) -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self._items = items
        self._keep_latest = keep_latest
        self.dropped = 0
        """Items dropped unread to make room for newer ones (``keep_latest`` only)."""
        self._queue: queue.Queue[T | _End] = queue.Queue(maxsize=depth)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._read, name=name, daemon=True)
        self._started = False

    def __enter__(self) -> Prefetch[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[T]:
        if not self._started:
            self._started = True
            self._thread.start()
        while True:
            item = self._queue.get()
            if isinstance(item, _End):
                self._closed.set()
                if item.error is not None:
                    raise item.error
                return
            yield item

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the reader (it finishes the item it is reading) and wait for it."""
        self._closed.set()  # a reader waiting on a full queue sees it within _POLL_S
        if self._started:
            self._thread.join(timeout_s)

    def _read(self) -> None:
        iterator = iter(self._items)
        end = _End()
        try:
            for item in iterator:
                if not self._put(item):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            end = _End(exc)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:  # a generator's finally (closing the source) runs here
                close()
        self._put(end)

    def _put(self, item: T | _End) -> bool:
        if self._keep_latest:
            return self._put_latest(item)
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _put_latest(self, item: T | _End) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put_nowait(item)
                return True
            except queue.Full:
                try:  # the consumer may have taken it meanwhile: then there is room
                    self._queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass
        return False
