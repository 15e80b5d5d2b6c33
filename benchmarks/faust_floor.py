"""The reference workers of ``benchmarks/stream.py``: a Faust worker that does nothing.

It runs with the stream app's own transport and settings (``worker_options``) and takes the
records in batches and drops them, either as a Faust agent (``FLOOR_MODE=agent``:
``take_events``) or as the app does, through a batch lane (``FLOOR_MODE=lane``,
``stream/batch_lane.py``): the rates say what each way of receiving records costs before
the app does anything with them.

    FLOOR_MODE=lane FLOOR_BOOTSTRAP=… FLOOR_TOPIC=… FLOOR_COUNT=5000 FLOOR_DATA_DIR=… \\
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
from faust.types import Message

from citywatch.stream.app import BATCH_BUFFER, BATCH_MAX, BATCH_WITHIN_S
from citywatch.stream.batch_lane import BatchLane, attach
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


@app.on_partitions_assigned.connect
async def started(app: faust.App, assigned: set[faust.types.TP], **_: object) -> None:
    """The clock starts when the topic is assigned, as the bare loop's starts at its first
    fetch: fetching, handing over and iterating are all inside the figure."""
    if any(tp.topic == records.get_topic_name() for tp in assigned):
        ASSIGNED.append(time.perf_counter())


SEEN = [0]


def seen(n: int) -> None:
    SEEN[0] += n
    if SEEN[0] >= COUNT:
        print(f"records/s {COUNT / (time.perf_counter() - ASSIGNED[-1]):.1f}", flush=True)
        os._exit(0)  # the figure is out; no need to wait for Faust's shutdown


if os.environ.get("FLOOR_MODE", "agent") == "agent":

    @app.agent(records)
    async def drop(stream: faust.StreamT) -> None:
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):  # type: ignore[attr-defined]
            seen(len(events))

else:

    async def drop_batch(batch: list[Message]) -> None:
        seen(len(batch))

    async def never(message: Message, exc: Exception) -> None:
        raise exc

    attach(app, BatchLane(app, records, drop_batch, never, max_records=BATCH_MAX,
                          within_s=BATCH_WITHIN_S, buffer=BATCH_BUFFER))  # fmt: skip


if __name__ == "__main__":
    sys.exit(app.main())
