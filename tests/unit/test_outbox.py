"""The durable outbox: idempotent puts, resends, receipts, shedding and restarts."""

from __future__ import annotations

import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from citywatch.edge.outbox import Outbox, OutboxFull, OutboxItem


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox.db", max_items=100, resend_after_s=30.0)
    yield box
    box.close()


def put(
    box: Outbox,
    message_id: str,
    kind: str = "alert",
    device: str = "s1",
    now: float = 0.0,
    qos: int | None = None,
) -> bool:
    """Enqueue a message with the usual QoS for its kind (0 for telemetry, else 1)."""
    if qos is None:
        qos = 0 if kind == "telemetry" else 1
    return box.put(message_id, f"cw/{device}/{kind}", message_id.encode(), qos, kind, device, now)


def ids(items: list[OutboxItem]) -> list[str]:
    return [item.message_id for item in items]


def test_put_item_is_due_with_its_fields(outbox: Outbox) -> None:
    """A stored message comes back from due() exactly as put, never sent."""
    assert outbox.put("a1", "cw/s1/alerts", b"\x00payload", 1, "alert", "s1", 12.5)
    assert outbox.due(now=13.0) == [
        OutboxItem(
            message_id="a1",
            topic="cw/s1/alerts",
            payload=b"\x00payload",
            qos=1,
            kind="alert",
            device_id="s1",
            enqueued_at=12.5,
            attempts=0,
            last_sent_at=None,
        )
    ]


def test_second_put_of_the_same_id_is_a_no_op(outbox: Outbox) -> None:
    """Putting a pending message id again returns False and stores nothing new."""
    assert put(outbox, "a1")
    assert not outbox.put("a1", "other/topic", b"other", 1, "alert", "s1", 5.0)
    (item,) = outbox.due(now=10.0)
    assert (item.topic, item.payload, len(outbox)) == ("cw/s1/alert", b"a1", 1)


def test_database_is_in_wal_mode(tmp_path: Path) -> None:
    """The file is a WAL-mode SQLite database (readers never block the writer)."""
    path = tmp_path / "outbox.db"
    Outbox(path).close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_missing_parent_directory_is_created(tmp_path: Path) -> None:
    """A fresh gateway's state directory need not exist yet."""
    with Outbox(tmp_path / "state" / "edge" / "outbox.db") as box:
        assert len(box) == 0


@pytest.mark.parametrize(
    ("now", "due"),
    [
        pytest.param(10.0, False, id="just sent"),
        pytest.param(40.0, False, id="exactly resend_after_s later"),
        pytest.param(40.5, True, id="receipt overdue"),
        pytest.param(5.0, True, id="clock went back (restart with a new monotonic base)"),
    ],
)
def test_sent_message_is_due_again_only_when_its_receipt_is_overdue(
    outbox: Outbox, now: float, due: bool
) -> None:
    """A sent message waits resend_after_s for its receipt before it is due again."""
    put(outbox, "a1")
    outbox.mark_sent("a1", now=10.0)
    assert ids(outbox.due(now)) == (["a1"] if due else [])


def test_mark_sent_counts_attempts_and_records_the_time(outbox: Outbox) -> None:
    """Each publish increments attempts and sets last_sent_at."""
    put(outbox, "a1")
    outbox.mark_sent("a1", now=1.0)
    outbox.mark_sent("a1", now=40.0)
    (item,) = outbox.due(now=100.0)
    assert (item.attempts, item.last_sent_at) == (2, 40.0)


def test_mark_sent_after_the_receipt_is_a_no_op(outbox: Outbox) -> None:
    """A receipt may overtake mark_sent (paho's thread); the late mark_sent does nothing."""
    put(outbox, "a1")
    assert outbox.acknowledge("a1")
    outbox.mark_sent("a1", now=1.0)
    assert len(outbox) == 0


def test_acknowledge_deletes_and_reports_whether_it_was_pending(outbox: Outbox) -> None:
    """The receipt removes the message; a duplicate receipt returns False."""
    put(outbox, "a1")
    put(outbox, "a2")
    assert outbox.acknowledge("a1")
    assert not outbox.acknowledge("a1")
    assert not outbox.acknowledge("never-put")
    assert ids(outbox.due(now=0.0)) == ["a2"]


def test_drop_unconfirmable_removes_published_qos0_telemetry(outbox: Outbox) -> None:
    """QoS-0 telemetry leaves the outbox once published; unknown ids are ignored."""
    put(outbox, "t1", kind="telemetry")
    outbox.mark_sent("t1", now=0.0)
    outbox.drop_unconfirmable("t1")
    outbox.drop_unconfirmable("t1")
    assert len(outbox) == 0
    assert outbox.counts()["telemetry"] == 0


def test_drop_unconfirmable_refuses_a_message_awaiting_its_receipt(outbox: Outbox) -> None:
    """A QoS-1 alert is never dropped without its receipt."""
    put(outbox, "a1", kind="alert")
    with pytest.raises(ValueError, match="acknowledge"):
        outbox.drop_unconfirmable("a1")
    assert len(outbox) == 1


def test_due_is_in_enqueue_order_per_device_and_oldest_first(outbox: Outbox) -> None:
    """Interleaved devices come back in enqueue order, whatever the caller's timestamps."""
    for message_id, device, now in [
        ("a", "s1", 5.0),
        ("b", "s2", 1.0),
        ("c", "s1", 3.0),
        ("d", "s2", 4.0),
        ("e", "s1", 2.0),
    ]:
        put(outbox, message_id, device=device, now=now)
    assert ids(outbox.due(now=10.0)) == ["a", "b", "c", "d", "e"]


def test_overdue_resend_comes_before_newer_messages(outbox: Outbox) -> None:
    """An alert whose receipt is overdue goes out before alerts enqueued after it."""
    put(outbox, "a1")
    outbox.mark_sent("a1", now=0.0)
    put(outbox, "a2", now=10.0)
    assert ids(outbox.due(now=10.0)) == ["a2"]
    assert ids(outbox.due(now=31.0)) == ["a1", "a2"]


def test_after_a_reconnect_what_the_broker_may_have_lost_goes_first_in_order(
    outbox: Outbox,
) -> None:
    """A broker restart loses the alerts in flight: on reconnect every unreceipted alert is
    due at once, so the backlog drains in enqueue order (before: newer alerts overtook them
    for resend_after_s, 62 of 200 stored out of order after a Mosquitto kill -9)."""
    for message_id in ("a1", "a2", "a3"):
        put(outbox, message_id)
    outbox.record_published(outbox.due(now=0.0), now=0.0)
    put(outbox, "a4", now=5.0)
    assert ids(outbox.due(now=5.0, alerts_window=10)) == ["a4"]
    outbox.resend_now()
    assert ids(outbox.due(now=5.0, alerts_window=10)) == ["a1", "a2", "a3", "a4"]
    assert [i.attempts for i in outbox.due(now=5.0)] == [1, 1, 1, 0]


def test_due_respects_the_limit(outbox: Outbox) -> None:
    """due() returns at most limit messages, the oldest ones."""
    for i in range(10):
        put(outbox, f"a{i}")
    assert ids(outbox.due(now=0.0, limit=3)) == ["a0", "a1", "a2"]


def test_len_and_counts_report_pending_messages_per_kind(outbox: Outbox) -> None:
    """counts() has every kind, zeros included; len() is their sum."""
    put(outbox, "a1", kind="alert")
    put(outbox, "t1", kind="telemetry")
    put(outbox, "t2", kind="telemetry")
    put(outbox, "e1", kind="evidence")
    assert outbox.counts() == {"alert": 1, "telemetry": 2, "status": 0, "evidence": 1}
    assert len(outbox) == 4


@pytest.mark.parametrize(
    ("kind", "qos", "message"),
    [("event", 1, "unknown outbox kind"), ("alert", 3, "qos must be")],
)
def test_put_rejects_an_unknown_kind_or_qos(
    outbox: Outbox, kind: str, qos: int, message: str
) -> None:
    """A typo in kind or an impossible QoS is a ValueError, not a stored message."""
    with pytest.raises(ValueError, match=message):
        outbox.put("x", "t", b"", qos, kind, "s1", 0.0)
    assert len(outbox) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"max_items": 0}, "max_items"), ({"resend_after_s": -1.0}, "resend_after_s")],
)
def test_constructor_rejects_impossible_limits(
    tmp_path: Path, kwargs: dict[str, float], message: str
) -> None:
    """max_items below 1 or a negative resend delay is refused at start."""
    with pytest.raises(ValueError, match=message):
        Outbox(tmp_path / "outbox.db", **kwargs)


# -- full outbox ----------------------------------------------------------------------------


def test_full_outbox_sheds_the_oldest_telemetry_first(tmp_path: Path) -> None:
    """A new message displaces the oldest telemetry, and the shed is counted."""
    with Outbox(tmp_path / "o.db", max_items=3) as box:
        put(box, "t1", kind="telemetry")
        put(box, "a1", kind="alert")
        put(box, "t2", kind="telemetry")
        assert put(box, "a2", kind="alert")
        assert ids(box.due(now=0.0)) == ["a1", "t2", "a2"]
        assert box.shed_count == 1


@pytest.mark.parametrize(
    ("pending", "new", "stored", "left"),
    [
        pytest.param(
            ["alert", "status"],
            "telemetry",
            False,
            ["alert", "status"],
            id="telemetry is shed itself before a status is",
        ),
        pytest.param(
            ["status", "telemetry"],
            "status",
            True,
            ["status", "status"],
            id="a status displaces telemetry",
        ),
        pytest.param(
            ["evidence", "status"],
            "alert",
            True,
            ["evidence", "alert"],
            id="an alert displaces a status before evidence",
        ),
        pytest.param(
            ["alert", "evidence"],
            "alert",
            True,
            ["alert", "alert"],
            id="an alert displaces evidence when nothing cheaper is left",
        ),
        pytest.param(
            ["alert", "alert"],
            "evidence",
            False,
            ["alert", "alert"],
            id="evidence is shed when only alerts are pending",
        ),
    ],
)
def test_full_outbox_sheds_the_least_valuable_message(
    tmp_path: Path, pending: list[str], new: str, stored: bool, left: list[str]
) -> None:
    """Shedding order is telemetry, status, evidence; alerts are never shed."""
    with Outbox(tmp_path / "o.db", max_items=2) as box:
        for i, kind in enumerate(pending):
            put(box, f"old{i}", kind=kind)
        assert put(box, "new", kind=new) is stored
        assert [item.kind for item in box.due(now=0.0)] == left
        assert box.shed_count == 1


def test_outbox_full_of_alerts_refuses_a_new_alert(tmp_path: Path) -> None:
    """An alert is never shed: with only alerts pending, a new alert raises OutboxFull."""
    with Outbox(tmp_path / "o.db", max_items=2) as box:
        put(box, "a1")
        put(box, "a2")
        with pytest.raises(OutboxFull, match="max_items"):
            put(box, "a3")
        assert ids(box.due(now=0.0)) == ["a1", "a2"]
        assert box.shed_count == 0


def test_reopening_with_a_smaller_limit_sheds_down_to_it(tmp_path: Path) -> None:
    """A lowered max_items sheds as many old telemetry messages as needed on the next put."""
    path = tmp_path / "o.db"
    with Outbox(path, max_items=10) as box:
        for i in range(5):
            put(box, f"t{i}", kind="telemetry")
    with Outbox(path, max_items=3) as box:
        assert put(box, "a1")
        assert ids(box.due(now=0.0)) == ["t3", "t4", "a1"]
        assert box.shed_count == 3


# -- restarts and threads -------------------------------------------------------------------


def test_pending_messages_survive_a_restart_with_attempts_kept(tmp_path: Path) -> None:
    """Reopening the file finds pending messages, attempts, send times and shed count."""
    path = tmp_path / "outbox.db"
    with Outbox(path, max_items=2) as box:
        put(box, "t1", kind="telemetry")
        put(box, "a1")
        put(box, "a2")
        box.mark_sent("a1", now=100.0)
        box.mark_sent("a1", now=140.0)
    with Outbox(path, max_items=2) as box:
        assert box.counts() == {"alert": 2, "telemetry": 0, "status": 0, "evidence": 0}
        assert box.shed_count == 1
        first, second = box.due(now=200.0)
        assert (first.message_id, first.attempts, first.last_sent_at) == ("a1", 2, 140.0)
        assert (second.message_id, second.attempts, second.last_sent_at) == ("a2", 0, None)
        assert not put(box, "a1")


@pytest.mark.slow
def test_concurrent_puts_and_receipts_keep_counts_consistent(tmp_path: Path) -> None:
    """Producers and a receipt thread sharing one outbox lose and double-count nothing."""
    box = Outbox(tmp_path / "o.db")
    per_thread = 200

    def produce(device: str) -> None:
        for i in range(per_thread):
            put(box, f"{device}-{i}", device=device, now=float(i))

    def receive() -> None:
        for i in range(per_thread):
            box.acknowledge(f"s0-{i}")

    threads = [threading.Thread(target=produce, args=(f"s{n}",)) for n in range(4)]
    threads.append(threading.Thread(target=receive))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i in range(per_thread):
        box.acknowledge(f"s0-{i}")
    due = box.due(now=0.0, limit=10_000)
    assert len(box) == len(due) == 3 * per_thread
    for device in ("s1", "s2", "s3"):
        assert [item.message_id for item in due if item.device_id == device] == [
            f"{device}-{i}" for i in range(per_thread)
        ]
    box.close()
    box.close()


# -- model-based: the outbox behaves like a small list --------------------------------------

SHED_ORDER = ("telemetry", "status", "evidence")


@dataclass
class Pending:
    """The model's view of one pending message."""

    message_id: str
    kind: str
    attempts: int = 0
    sent_at: float | None = None


class OutboxModel(RuleBasedStateMachine):
    """Random puts, sends, receipts, ticks and restarts, checked against a list model."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.path = Path(self.dir.name) / "o.db"
        self.box = Outbox(self.path, max_items=4, resend_after_s=10.0)
        self.items: list[Pending] = []
        self.shed = 0
        self.now = 0.0
        self.next_id = 0

    def teardown(self) -> None:
        self.box.close()
        self.dir.cleanup()

    @rule(kind=st.sampled_from(("alert", *SHED_ORDER)))
    def put_new(self, kind: str) -> None:
        message_id = f"m{self.next_id}"
        self.next_id += 1
        if len(self.items) >= 4:
            present = [k for k in SHED_ORDER if any(i.kind == k for i in self.items)]
            if present and (
                kind == "alert" or SHED_ORDER.index(kind) >= SHED_ORDER.index(present[0])
            ):
                self.items.remove(next(i for i in self.items if i.kind == present[0]))
                self.shed += 1
            elif kind == "alert":
                with pytest.raises(OutboxFull):
                    put(self.box, message_id, kind=kind, now=self.now)
                return
            else:
                assert not put(self.box, message_id, kind=kind, now=self.now)
                self.shed += 1
                return
        assert put(self.box, message_id, kind=kind, now=self.now)
        self.items.append(Pending(message_id, kind))

    @precondition(lambda self: bool(self.items))
    @rule(data=st.data())
    def put_again(self, data: st.DataObject) -> None:
        item = data.draw(st.sampled_from(self.items))
        assert not put(self.box, item.message_id, kind=item.kind, now=self.now)

    @precondition(lambda self: bool(self.items))
    @rule(data=st.data())
    def send(self, data: st.DataObject) -> None:
        item = data.draw(st.sampled_from(self.items))
        self.box.mark_sent(item.message_id, self.now)
        item.attempts += 1
        item.sent_at = self.now

    @precondition(lambda self: bool(self.items))
    @rule(data=st.data())
    def receipt(self, data: st.DataObject) -> None:
        item = data.draw(st.sampled_from(self.items))
        assert self.box.acknowledge(item.message_id)
        self.items.remove(item)

    @rule(seconds=st.sampled_from([0.0, 1.0, 10.0, 11.0]))
    def tick(self, seconds: float) -> None:
        self.now += seconds

    @rule()
    def restart(self) -> None:
        self.box.close()
        self.box = Outbox(self.path, max_items=4, resend_after_s=10.0)

    @invariant()
    def agrees_with_the_model(self) -> None:
        expected_due = [
            i.message_id for i in self.items if i.sent_at is None or i.sent_at < self.now - 10.0
        ]
        assert ids(self.box.due(self.now)) == expected_due
        assert len(self.box) == len(self.items)
        assert self.box.shed_count == self.shed
        everything = self.box.due(self.now + 1e6)
        assert [(i.message_id, i.attempts) for i in everything] == [
            (i.message_id, i.attempts) for i in self.items
        ]


OutboxModel.TestCase.settings = settings(max_examples=50, stateful_step_count=30, deadline=None)
test_outbox_behaves_like_a_list_model = pytest.mark.slow(OutboxModel.TestCase)
