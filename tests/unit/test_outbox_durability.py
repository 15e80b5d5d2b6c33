"""kill -9 while the outbox appends: every put that returned is there, every receipt taken
is gone, no batch is half stored, and the file passes SQLite's integrity check."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from citywatch.edge.outbox import Outbox

BATCH = 5
WRITER = f"""
import sys
from pathlib import Path
from citywatch.edge.outbox import NewMessage, Outbox

box = Outbox(Path(sys.argv[1]))
start = int(sys.argv[2])
for n in range(start, start + 1_000_000, {BATCH}):
    batch = [
        NewMessage(f"m{{i}}", "cw/s/alerts", b"p" * 300, 1, "alert", f"s{{i % 7}}")
        for i in range(n, n + {BATCH})
    ]
    if n % 2:
        box.put_many(batch, float(n))
    else:  # single puts too: one transaction each
        for m in batch:
            box.put(m.message_id, m.topic, m.payload, m.qos, m.kind, m.device_id, float(n))
    print("put", n, flush=True)
    if n % 3 == 0:
        box.acknowledge(f"m{{n - {BATCH}}}")
        print("ack", n - {BATCH}, flush=True)
"""


def record(line: str, put: set[int], acked: set[int]) -> None:
    """Note one line of the writer's report; a line the kill cut short is not a report (the
    call it would announce may not have returned)."""
    words = line.split()
    if len(words) == 2 and words[1].lstrip("-").isdigit() and line.endswith("\n"):
        (put if words[0] == "put" else acked).add(int(words[1]))


def run_until_killed(path: Path, start: int, rng: random.Random) -> tuple[set[int], set[int]]:
    """Start a writer, SIGKILL it at a random moment mid-stream; the batches it reported
    put, and the ids it reported acknowledged."""
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(start)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    put: set[int] = set()
    acked: set[int] = set()
    target = rng.randint(20, 200)
    deadline = time.monotonic() + 30
    for line in writer.stdout:
        record(line, put, acked)
        if len(put) >= target or time.monotonic() > deadline:
            break
    time.sleep(rng.uniform(0, 0.02))  # land somewhere inside the next append
    writer.send_signal(signal.SIGKILL)
    for line in writer.stdout:  # lines written before the kill count as returned
        record(line, put, acked)
    writer.wait(10)
    assert writer.returncode == -signal.SIGKILL
    return put, acked


@pytest.mark.service
def test_kill_9_during_appends_loses_no_acknowledged_put(tmp_path: Path) -> None:
    """Three writers killed mid-append in turn on one file: nothing reported put is lost."""
    path = tmp_path / "outbox.sqlite"
    rng = random.Random(16)
    all_put: set[int] = set()
    all_acked: set[int] = set()
    start = 0
    for _ in range(3):
        put, acked = run_until_killed(path, start, rng)
        all_put |= put
        all_acked |= acked
        start = max(put) + 1000 * BATCH  # a fresh id range after every crash
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {int(r[0][1:]) for r in db.execute("SELECT message_id FROM outbox")}
    assert stored  # the writers got somewhere
    expected = {i for n in all_put for i in range(n, n + BATCH)} - all_acked
    assert expected <= stored
    assert not (all_acked & stored)
    first_of_batch = {i - i % BATCH for i in stored}
    partial = [
        n for n in first_of_batch if n % 2 and not set(range(n, n + BATCH)) <= stored | all_acked
    ]
    assert not partial, "a put_many batch was half stored"
    with Outbox(path) as box:  # and the outbox opens it and counts it
        assert len(box) == len(stored)
