"""The stream worker's collector tuning: the state read is frozen, the state it replaces is
still collected."""

from __future__ import annotations

import gc
import weakref

from citywatch.stream.heap import settled


class Node:
    """An object in a reference cycle: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


def test_a_rebuild_frees_the_cycles_of_the_frozen_state_it_replaces() -> None:
    """A cycle frozen by one rebuild and dropped by the next is collected, the rest frozen."""
    old = Node()
    gone = weakref.ref(old)
    gc.freeze()  # as the previous rebuild left the heap
    try:
        with settled():
            del old
        assert gone() is None
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
