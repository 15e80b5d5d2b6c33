"""Reading frames ahead on a thread: same frames, same order, same errors, bounded memory."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from citywatch.edge.camera.frame_prefetch import Prefetch


class Source:
    """A generator source that records how far it was read and whether it was closed."""

    def __init__(self, count: int, fail_at: int | None = None) -> None:
        self.count, self.fail_at = count, fail_at
        self.produced = 0
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[int]:
        try:
            for n in range(self.count):
                if n == self.fail_at:
                    raise OSError(f"truncated after {n} frames")
                self.produced += 1
                yield n
        finally:
            self.closed.set()


def test_every_item_arrives_once_in_order_and_the_source_is_closed() -> None:
    source = Source(50)
    with Prefetch(source, depth=2) as frames:
        assert list(frames) == list(range(50))
    assert source.closed.is_set()


def test_a_source_error_surfaces_after_the_frames_before_it() -> None:
    """A file cut at frame 7: the camera thread gets frames 0–6, then the error."""
    got: list[int] = []
    with (
        Prefetch(Source(20, fail_at=7), depth=3) as frames,
        pytest.raises(OSError, match="truncated after 7"),
    ):
        for n in frames:
            got.append(n)
    assert got == list(range(7))


def test_the_reader_stays_at_most_depth_frames_ahead() -> None:
    """Memory is bounded: with the consumer stalled, the reader waits after depth frames
    (plus the one in its hands)."""
    source = Source(1000)
    with Prefetch(source, depth=2) as frames:
        iterator = iter(frames)
        assert next(iterator) == 0
        time.sleep(0.3)
        assert source.produced <= 1 + 2 + 1


def test_leaving_early_stops_the_reader_and_closes_the_source() -> None:
    """The gateway stops mid-stream: the reader thread ends and the source is released."""
    source = Source(10_000)
    prefetch = Prefetch(source, depth=2, name="read-test")
    for n in prefetch:
        if n == 5:
            break
    prefetch.close()
    assert source.closed.wait(2)
    assert not any(t.name == "read-test" for t in threading.enumerate())
    assert source.produced < 20


def test_a_live_source_never_waits_for_a_slow_consumer_and_the_freshest_frame_wins() -> None:
    """keep_latest: the reader drains the source at its own pace; the consumer sees frames
    in order with the stale ones dropped (and counted), and the last frame always arrives."""
    got: list[int] = []
    with Prefetch(Source(300), depth=2, keep_latest=True) as frames:
        for n in frames:
            got.append(n)
            time.sleep(0.005)  # a detector slower than the stream
    assert got == sorted(got) and got[-1] == 299
    assert frames.dropped == 300 - len(got) > 0
