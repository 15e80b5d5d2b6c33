"""The stream worker's garbage collector, tuned for a large state that lives long.

Why: a worker holds every live work order and incident in memory (tens of thousands of
objects each) and allocates a few hundred thousand short-lived objects per batch (decoded
alerts, rows, events, receipts). With CPython's default thresholds the full collection
that this churn triggers walks the whole state again and again: measured on the stream
benchmark (20,000 alerts, each opening an order), 11 full collections took 1.8 s of the
same-work loop's ~7.5 s, a quarter of its time (``benchmarks/stream.py``).

Two changes remove that: the state read from the database is frozen after each rebuild
(:func:`gc.freeze`: the collector no longer walks it; what is freed by reference counting
is still freed), and the young generation is larger and full collections rarer, so a
batch's garbage is swept in a few young collections. Objects of a frozen state that a
later rebuild drops are unfrozen first (:func:`settled` around the rebuild), so a cycle
among them is still collected.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

THRESHOLDS = (50_000, 20, 100)
"""Allocations before a young collection (default 700), young collections before a
middle one (10), middle ones before a full one (10; CPython also waits until the objects
added since the last full collection are a quarter of those it holds)."""


def tune() -> None:
    """Set the worker's collector thresholds (once, as the worker starts)."""
    gc.set_threshold(*THRESHOLDS)


@contextmanager
def settled() -> Iterator[None]:
    """Around a rebuild of the worker's state: unfreeze the state it replaces, then
    collect what the rebuild dropped and freeze what it read (see the module doc)."""
    gc.unfreeze()
    yield
    gc.collect()
    gc.freeze()
    log.debug("%d objects frozen after reading the state", gc.get_freeze_count())
