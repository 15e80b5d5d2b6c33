"""The reference agent of ``benchmarks/stream.py``: a Faust worker that does nothing.

It runs with the stream app's own transport and settings (``worker_options``) and an agent
that takes the records in batches, as the app does, and drops them: the rate it reaches is
the most any Faust agent can do on this machine, so the app's ratio is read against it.

    FLOOR_BOOTSTRAP=… FLOOR_TOPIC=… FLOOR_COUNT=5000 FLOOR_DATA_DIR=… \\
        .venv/bin/python benchmarks/faust_floor.py worker -l warn

Prints ``records/s N`` once it has seen FLOOR_COUNT records (timed from the topic's
assignment) and exits.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import faust

from citywatch.stream.app import BATCH_MAX, BATCH_WITHIN_S
from citywatch.stream.faust_transport import StreamApp, worker_options

COUNT = int(os.environ["FLOOR_COUNT"])
app = StreamApp(
    "citywatch-bench-floor",
    broker=f"kafka://{os.environ['FLOOR_BOOTSTRAP']}",
    **worker_options(
        partitions=1, session_timeout_s=10.0, data_dir=Path(os.environ["FLOOR_DATA_DIR"])
    ),
)
records = app.topic(
    os.environ["FLOOR_TOPIC"], value_type=bytes, key_type=bytes,
    value_serializer="raw", key_serializer="raw",
)  # fmt: skip


ASSIGNED: list[float] = []


@app.on_partitions_assigned.connect  # type: ignore[misc]
async def started(app: faust.App, assigned: set[faust.types.TP], **_: object) -> None:
    """The clock starts when the topic is assigned, as the bare loop's starts at its first
    fetch: fetching, handing over and iterating are all inside the figure."""
    if any(tp.topic == records.get_topic_name() for tp in assigned):
        ASSIGNED.append(time.perf_counter())


@app.agent(records)
async def drop(stream: faust.StreamT) -> None:
    seen = 0
    async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):  # type: ignore[attr-defined]
        seen += len(events)
        if seen >= COUNT:
            print(f"records/s {COUNT / (time.perf_counter() - ASSIGNED[-1]):.1f}", flush=True)
            os._exit(0)  # the figure is out; no need to wait for Faust's shutdown


if __name__ == "__main__":
    sys.exit(app.main())
