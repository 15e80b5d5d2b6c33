"""The outbox on a disk that cannot be written: a real full filesystem (a small tmpfs, or
SQLite's page limit where mounting is not allowed) and a real read-only one (a read-only
bind mount as root, file modes otherwise). New messages wait in a bounded memory queue, are
still published and acknowledged, and reach the disk when it recovers; nothing is lost."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from citywatch.edge.outbox import NewMessage, Outbox, OutboxItem

PAYLOAD = b"x" * 6000
"""Bigger than a page: every alert needs new pages, so a full disk shows at once."""


def alert(message_id: str, device: str = "s1") -> NewMessage:
    return NewMessage(message_id, f"cw/{device}/alerts", PAYLOAD, 1, "alert", device)


def ids(items: list[OutboxItem]) -> list[str]:
    return [i.message_id for i in items]


pytestmark = pytest.mark.service  # mounts a tmpfs or a read-only bind (subprocesses) where it may

def _mount(*args: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=True, capture_output=True)


class FullDisk:
    """A directory whose filesystem can be filled up and freed again."""

    def __init__(self, root: Path, tmpfs: bool) -> None:
        self.dir = root / "disk"
        self.dir.mkdir()
        self.tmpfs = tmpfs and _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(self.dir))
        self._filler = self.dir / "filler"

    @property
    def stays_full_when_reopened(self) -> bool:
        """SQLite's page limit belongs to a connection; a filled filesystem does not."""
        return self.tmpfs

    def fill(self, box: Outbox) -> None:
        if self.tmpfs:
            fd = os.open(self._filler, os.O_WRONLY | os.O_CREAT)
            try:
                while os.write(fd, b"\0" * 512):
                    pass
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
            finally:
                os.close(fd)
            return
        for connection in (
            box._disk.db,
            box._disk.lazy,
        ):  # real SQLITE_FULL, from the pages it holds
            assert connection is not None
            pages = connection.execute("PRAGMA page_count").fetchone()[0]
            connection.execute(f"PRAGMA max_page_count = {pages}")

    def free(self) -> None:
        self._filler.unlink(missing_ok=True)

    def close(self) -> None:
        if self.tmpfs:
            _umount(self.dir)


@pytest.fixture(params=["tmpfs", "page-limit"])
def full_disk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FullDisk]:
    disk = FullDisk(tmp_path, tmpfs=request.param == "tmpfs")
    if request.param == "tmpfs" and not disk.tmpfs:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    yield disk
    disk.close()


class ReadOnlyDisk:
    """A directory seen through a path that can be made read-only and writable again."""

    def __init__(self, root: Path) -> None:
        self.real = root / "real"
        self.view = root / "view"
        self.real.mkdir()
        self.view.mkdir()
        self.bind = _mount("--bind", str(self.real), str(self.view))
        if not self.bind:  # file modes instead (they bind everyone but root)
            self.view.rmdir()
            self.view = self.real

    def read_only(self) -> None:
        if self.bind:
            subprocess.run(
                ["mount", "-o", "remount,bind,ro", str(self.view)], check=True, capture_output=True
            )
        else:
            for path in (*self.real.iterdir(), self.real):
                path.chmod(0o555 if path.is_dir() else 0o444)

    def writable(self) -> None:
        if self.bind:
            subprocess.run(
                ["mount", "-o", "remount,bind,rw", str(self.view)], check=True, capture_output=True
            )
        else:
            for path in (self.real, *self.real.iterdir()):
                path.chmod(0o755 if path.is_dir() else 0o644)

    def close(self) -> None:
        if self.bind:
            _umount(self.view)


@pytest.fixture
def read_only_disk(tmp_path: Path) -> Iterator[ReadOnlyDisk]:
    disk = ReadOnlyDisk(tmp_path)
    if not disk.bind and os.geteuid() == 0:
        pytest.skip("root ignores file modes, and bind mounts are not allowed here")
    yield disk
    disk.close()


def test_full_disk_holds_new_alerts_in_memory_and_writes_them_when_space_returns(
    full_disk: FullDisk, caplog: pytest.LogCaptureFixture
) -> None:
    """Full: alerts go to a bounded memory queue (the newest refused, none dropped), all are
    still due, receipts and rejections are kept, and everything lands once space returns."""
    path = full_disk.dir / "outbox.sqlite"
    box = Outbox(path, memory_items=5, resend_after_s=30.0)
    box.put_many([alert("a1"), alert("a2")], now=0.0)
    full_disk.fill(box)
    caplog.set_level(logging.ERROR, logger="citywatch.edge.outbox")
    result = box.put_many([alert(f"a{n}", "s2" if n % 2 else "s1") for n in range(3, 9)], now=1.0)
    assert (result.stored, result.held, result.refused) == (5, 5, ("a8",))
    assert box.put_many([alert("a3")], now=1.5).duplicates == 1
    assert box.fault is not None and "full" in box.fault
    health = box.health()
    assert (health.write_faults, health.held, health.refused, len(box)) == (1, 5, 1, 7)

    due = box.due(now=10.0)
    assert ids(due) == ["a1", "a2", "a3", "a4", "a5", "a6", "a7"]
    box.record_published(due, now=10.0)
    assert box.due(now=11.0) == []  # the publish marks are kept in memory
    assert ids(box.due(now=10.0, alerts_in_order=True)) == []
    assert box.acknowledge("a1") and box.acknowledge("a3")
    assert box.quarantine("a2", "NUL byte in rule", rejected_at=9.0, now=12.0)
    assert box.quarantine("a5", "depth out of range", rejected_at=9.0, now=12.0)
    assert ids(box.due(now=50.0, alerts_in_order=True)) == ["a4", "a7"]  # s1, s2 heads
    assert (len(box), box.health().quarantined) == (3, 2)
    if full_disk.stays_full_when_reopened:
        assert not box.flush(now=20.0)
    faults = [r for r in caplog.records if "cannot be written while" in r.message]
    assert len(faults) == 1  # one error per episode, not one per write

    full_disk.free()
    assert box.flush(now=30.0)
    assert (box.fault, box.health().held, len(box), box.health().quarantined) == (None, 0, 3, 2)
    box.close()
    with Outbox(path) as again:
        pending = again.due(now=1e6)
        assert ids(pending) == ["a4", "a6", "a7"]
        assert [i.attempts for i in pending] == [1, 1, 1]
        assert {m.message_id: m.reason for m in again.quarantined()} == {
            "a2": "NUL byte in rule",
            "a5": "depth out of range",
        }


def test_full_memory_queue_refuses_new_alerts_and_logs_once(
    full_disk: FullDisk, caplog: pytest.LogCaptureFixture
) -> None:
    """Past the memory bound each new alert is refused by id, counted, and logged once."""
    box = Outbox(full_disk.dir / "outbox.sqlite", memory_items=2)
    box.put_many([alert("a0")], now=0.0)
    full_disk.fill(box)
    caplog.set_level(logging.ERROR, logger="citywatch.edge.outbox")
    refused = [box.put_many([alert(f"a{n}")], now=1.0).refused for n in range(1, 6)]
    assert refused == [(), (), ("a3",), ("a4",), ("a5",)]
    assert box.health().refused == 3
    assert sum("memory queue is full" in r.message for r in caplog.records) == 1
    assert ids(box.due(now=2.0)) == ["a0", "a1", "a2"]
    full_disk.free()
    box.close()  # the last write on close takes what memory holds
    with Outbox(full_disk.dir / "outbox.sqlite") as again:
        assert ids(again.due(now=3.0)) == ["a0", "a1", "a2"]


def test_read_only_outbox_is_still_published_and_written_when_writable_again(
    read_only_disk: ReadOnlyDisk,
) -> None:
    """A gateway restarting on a read-only outbox runs: what the file holds goes out, new
    alerts and receipts wait in memory, and all is written once the file is writable."""
    path = read_only_disk.view / "outbox.sqlite"
    with Outbox(path) as box:
        box.put_many([alert("a1"), alert("a2", "s2")], now=0.0)
    read_only_disk.read_only()
    box = Outbox(path)
    try:
        assert box.fault is not None and box.health().write_faults == 1
        assert box.put_many([alert("a3")], now=1.0).held == 1
        assert ids(box.due(now=2.0, alerts_in_order=True)) == ["a1", "a2"]
        assert box.acknowledge("a1")
        assert ids(box.due(now=2.0, alerts_in_order=True)) == ["a2", "a3"]
        assert not box.flush(now=3.0)
        read_only_disk.writable()
        assert box.flush(now=5.0) and box.fault is None
    finally:
        box.close()
    with Outbox(path) as again:
        assert ids(again.due(now=6.0)) == ["a2", "a3"]


def test_unwritable_fault_is_a_disk_fault_and_a_busy_database_is_not(tmp_path: Path) -> None:
    """Only full, read-only, I/O and cannot-open errors switch to memory; others raise."""
    import sqlite3

    from citywatch.edge.outbox import is_disk_fault

    db = sqlite3.connect(tmp_path / f"{uuid.uuid4()}.db")
    db.execute("PRAGMA query_only = 1")
    with pytest.raises(sqlite3.OperationalError) as read_only:
        db.execute("CREATE TABLE t (x)")
    db.close()
    assert is_disk_fault(read_only.value)
    assert not is_disk_fault(sqlite3.OperationalError("database is locked"))
    assert not is_disk_fault(ValueError("not sqlite"))


def test_closing_on_a_still_full_disk_names_every_message_it_could_not_keep(
    full_disk: FullDisk, caplog: pytest.LogCaptureFixture
) -> None:
    """Memory does not outlive the process: what the disk never took is logged by id."""
    if not full_disk.stays_full_when_reopened:
        pytest.skip("the page limit goes with the connection that close() reopens")
    box = Outbox(full_disk.dir / "outbox.sqlite")
    box.put_many([alert("a0")], now=0.0)
    full_disk.fill(box)
    box.put_many([alert("a1"), alert("a2")], now=1.0)
    caplog.set_level(logging.ERROR, logger="citywatch.edge.outbox")
    box.close()
    (lost,) = [r for r in caplog.records if "never took" in r.message]
    assert "2 message(s)" in lost.message and "a1, a2" in lost.message
    full_disk.free()
    with Outbox(full_disk.dir / "outbox.sqlite") as again:
        assert ids(again.due(now=2.0)) == ["a0"]


# -- model-based: whatever faults come and go, nothing accepted is lost -----------------------
class FaultyDiskModel(RuleBasedStateMachine):
    """Random puts, publishes, receipts, rejections, disk faults, recoveries and restarts:
    the pending alerts and the quarantine always match a plain list and set."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.path = Path(self.dir.name) / "o.sqlite"
        self.box = Outbox(self.path, resend_after_s=10.0)
        self.pending: list[str] = []
        self.device: dict[str, str] = {}
        self.sent_at: dict[str, float] = {}
        self.quarantined: set[str] = set()
        self.next_id = 0
        self.now = 0.0

    def teardown(self) -> None:
        self.box.close()
        self.dir.cleanup()

    def _head(self, device: str) -> str:
        return next(m for m in self.pending if self.device[m] == device)

    @rule(count=st.integers(1, 3), device=st.sampled_from(["s1", "s2"]))
    def put(self, count: int, device: str) -> None:
        batch = [alert(f"a{self.next_id + i}", device) for i in range(count)]
        self.next_id += count
        assert self.box.put_many(batch, self.now).stored == count
        self.pending += [m.message_id for m in batch]
        self.device |= {m.message_id: device for m in batch}

    @rule()
    def publish(self) -> None:
        due = self.box.due(self.now, alerts_in_order=True)
        self.box.record_published(due, self.now)
        self.sent_at |= dict.fromkeys(ids(due), self.now)

    @precondition(lambda self: bool(self.pending))
    @rule(data=st.data(), rejected=st.booleans())
    def receipt(self, data: st.DataObject, rejected: bool) -> None:
        message_id = data.draw(st.sampled_from(self.pending))
        if rejected:
            assert self.box.quarantine(message_id, "bad", None, self.now)
            self.quarantined.add(message_id)
        else:
            assert self.box.acknowledge(message_id)
        self.pending.remove(message_id)

    @precondition(lambda self: self.box.fault is None)
    @rule()
    def disk_fills_up(self) -> None:
        disk = self.box._disk
        for connection in (disk.db, disk.lazy):
            assert connection is not None
            pages = connection.execute("PRAGMA page_count").fetchone()[0]
            connection.execute(f"PRAGMA max_page_count = {pages}")

    @rule()
    def disk_recovers(self) -> None:
        assert self.box.flush(self.now, force=True)

    @rule(seconds=st.sampled_from([1.0, 11.0]))
    def tick(self, seconds: float) -> None:
        self.now += seconds

    @rule()
    def restart(self) -> None:
        self.box.close()
        self.box = Outbox(self.path, resend_after_s=10.0)

    @invariant()
    def nothing_is_lost(self) -> None:
        assert ids(self.box.due(self.now + 1e6)) == self.pending
        heads = [m for m in self.pending if m == self._head(self.device[m])]
        resend = [m for m in heads if self.sent_at.get(m, -1e9) < self.now - 10.0]
        assert ids(self.box.due(self.now, alerts_in_order=True)) == resend
        assert len(self.box) == len(self.pending)
        assert {m.message_id for m in self.box.quarantined()} == self.quarantined
        assert self.box.health().quarantined == len(self.quarantined)


FaultyDiskModel.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
test_no_fault_sequence_loses_an_accepted_alert = pytest.mark.slow(FaultyDiskModel.TestCase)
