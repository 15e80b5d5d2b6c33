"""The stream worker's uplink parts without the stack: validation and rejection of a batch's
records, the alert handler's store-then-answer order, its retry through a database outage
and its dead letters on a bug (stream/intake.py, rejections.py, alert_handler.py,
device_data.py, outbound.py). The store step and the send are functions the worker is
given, so these tests give their own: the order of calls is what they check."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from faust.types import Message

from citywatch.config import load_config
from citywatch.contracts import (
    Alert,
    Channel,
    DeviceRef,
    KafkaTopics,
    Location,
    Receipt,
    ReceiptStatus,
    Telemetry,
    WorkOrderEvent,
    decode,
    encode,
)
from citywatch.stream.alert_handler import AlertHandler, StoreAlerts
from citywatch.stream.db_retry import DatabaseRetry
from citywatch.stream.deadletter import DeadLetter
from citywatch.stream.device_data import DeviceDataHandler
from citywatch.stream.intake import Intake, Validated
from citywatch.stream.kafka_batches import Record
from citywatch.stream.outbound import Outbound
from citywatch.stream.processor import Outcome
from citywatch.stream.rejections import Rejections, rejectable
from citywatch.stream.sink import AlertConflict, AlertRow
from citywatch.stream.validate import Registry
from tests.conftest import DEMO_CONFIG

CONFIG = load_config(DEMO_CONFIG)
REGISTRY = Registry.from_config(CONFIG)
TOPICS = KafkaTopics("citywatch")
SENSOR = DeviceRef(site="demo", kind="sensor", id="wl-underpass-01")
NOW = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)


def alert_bytes(n: int) -> bytes:
    return encode(
        Alert(id=f"wl.{n}.0", episode_id=f"wl.{n}", seq=0, device=SENSOR, kind="waterlogging",
              rule="depth_level", phase="start", event_time=NOW + timedelta(seconds=n),
              location=Location(lat=31.4, lon=119.4), confidence=1)
    )  # fmt: skip


def record(offset: int, value: bytes, channel: Channel = Channel.ALERTS) -> Message:
    """A Kafka record as the bridge writes it: the device's MQTT topic in a header."""
    headers = [("mqtt_topic", SENSOR.address(channel).topic.encode())]
    return Message(TOPICS.alerts, 0, offset, time.time(), 0, headers, b"k", value, None)


class Sent:
    """What the worker sent to Kafka, in order: dead letters and records (receipts, events)."""

    def __init__(self, log: list[str] | None = None) -> None:
        self.dead: list[DeadLetter] = []
        self.records: list[Record] = []
        self.log = log if log is not None else []

    async def dead_letter(self, letter: DeadLetter) -> None:
        self.dead.append(letter)
        self.log.append(f"dead letter {letter.offset}")

    async def send(self, records: Sequence[Record]) -> None:
        self.records += records
        self.log.append(f"sent {len(records)}")

    def receipts(self) -> list[Receipt]:
        return [decode(v, Receipt) for t, _, v in self.records if t == TOPICS.receipts]

    def events(self) -> list[WorkOrderEvent]:
        return [decode(v, WorkOrderEvent) for t, _, v in self.records if t == TOPICS.workorder_events]  # fmt: skip


def parts(sent: Sent) -> tuple[Outbound, Rejections, Counter[str]]:
    counters: Counter[str] = Counter()
    outbound = Outbound(TOPICS, sent.send)
    return outbound, Rejections(sent.dead_letter, outbound, counters, clock=lambda: NOW), counters


def event(work_order: str) -> WorkOrderEvent:
    return WorkOrderEvent(id=f"{work_order}.1", work_order_id=work_order, event="opened",
                          state="new", actor="citywatch", time=NOW)  # fmt: skip


def alert_handler(
    sent: Sent, store: StoreAlerts, invalidate: Callable[[], None] = lambda: None
) -> tuple[AlertHandler, Counter[str]]:
    outbound, reject, counters = parts(sent)
    handler = AlertHandler(
        store=store, district_of=lambda _: "d-1", outbound=outbound, reject=reject,
        invalidate=invalidate, counters=counters, clock=lambda: NOW,
    )  # fmt: skip
    return handler, counters


async def validated(*values: bytes) -> list[Validated]:
    intake = Intake(REGISTRY, parts(Sent())[1], lambda batch: _nothing())
    return await intake.valid([record(n, v) for n, v in enumerate(values)])


async def _nothing() -> None:
    return None


async def test_a_record_failing_validation_is_dead_lettered_with_its_reason_and_the_others_handled() -> None:  # fmt: skip
    """One malformed alert in a batch: it alone is dead-lettered (with its bytes, headers and
    reason) and rejected to its device; the valid records reach the handler, in order."""
    sent = Sent()
    _, reject, counters = parts(sent)
    handled: list[list[int]] = []

    async def handler(batch: Sequence[Validated]) -> None:
        handled.append([r.offset for r, _ in batch])

    broken = b'{"v": "1.0", "type": "alert", "id": "broken-1", "confidence": "very"}'
    records = [record(0, alert_bytes(0)), record(1, broken), record(2, alert_bytes(2))]
    await Intake(REGISTRY, reject, handler)(records)

    assert handled == [[0, 2]]
    (letter,) = sent.dead
    assert (letter.source_topic, letter.offset, letter.value) == (TOPICS.alerts, 1, broken)
    assert letter.error_class == "MalformedMessage" and "confidence" in letter.message
    headers = dict(letter.headers())
    assert headers["__connect.errors.exception.class.name"] == b"MalformedMessage"
    assert headers["mqtt_topic"] == SENSOR.address(Channel.ALERTS).topic.encode()
    (rejected,) = sent.receipts()
    assert (rejected.message_id, rejected.status) == ("broken-1", ReceiptStatus.REJECTED)
    assert rejected.device == SENSOR and rejected.reason is not None
    assert rejected.reason.startswith("MalformedMessage: ") and rejected.received_at == NOW
    assert counters == Counter({"dead_letter.MalformedMessage": 1})


async def test_a_batch_with_no_valid_record_never_reaches_its_handler() -> None:
    """Every record rejected: the handler (a database transaction) is not called at all."""
    sent = Sent()
    _, reject, _ = parts(sent)
    called: list[int] = []

    async def handler(batch: Sequence[Validated]) -> None:
        called.append(len(batch))

    await Intake(REGISTRY, reject, handler)([record(0, b"{not json"), record(1, b"")])
    assert called == [] and [d.offset for d in sent.dead] == [0, 1]


@pytest.mark.parametrize(
    ("value", "headers", "answered"),
    [
        (b'{"type": "alert", "id": "a-1"}', True, ("a-1",)),
        (b'{"type": "telemetry", "id": "t-1"}', True, None),
        (b'{"type": "alert", "id": 17}', True, None),
        (b'["alert"]', True, None),
        (b"{not json", True, None),
        (b'{"type": "alert", "id": "a-1"}', False, None),
    ],
    ids=["alert", "not an alert", "id not a string", "not an object", "not json", "no topic"],
)
def test_only_an_alert_whose_device_and_id_can_be_read_is_answered(
    value: bytes, headers: bool, answered: tuple[str] | None
) -> None:
    """A rejected receipt goes to the device of the record's topic, for alerts only (the one
    message a gateway keeps until its receipt)."""
    topic = {"mqtt_topic": SENSOR.address(Channel.ALERTS).topic.encode()} if headers else {}
    found = rejectable(value, topic)
    assert (found and (found[1],)) == answered
    assert found is None or found[0] == SENSOR


async def test_an_alert_whose_id_is_not_valid_is_dead_lettered_without_a_receipt() -> None:
    """An id no receipt may carry: the dead letter still goes out; no receipt is built."""
    sent = Sent()
    _, reject, _ = parts(sent)
    await Intake(REGISTRY, reject, lambda batch: _nothing())(
        [record(0, b'{"type": "alert", "id": "has spaces"}')]
    )
    assert len(sent.dead) == 1 and sent.records == []


async def test_receipts_and_events_are_sent_only_after_the_store_step_returned() -> None:
    """Store, then one send of every receipt and the events: a receipt per alert naming its
    work order, redeliveries counted apart."""
    log: list[str] = []
    sent = Sent(log)
    stored: list[list[str]] = []

    async def store(rows: Sequence[AlertRow]) -> Outcome:
        log.append("store begins")
        stored.append([r.alert.id for r in rows])
        assert all(r.district == "d-1" and r.position is not None for r in rows)
        log.append("store committed")
        return Outcome({"wl.0.0": "wo-1", "wl.1.0": "wo-1"}, [event("wo-1")], new_alerts=1)

    handler, counters = alert_handler(sent, store)
    await handler(await validated(alert_bytes(0), alert_bytes(1)))

    assert log == ["store begins", "store committed", "sent 3"]
    assert stored == [["wl.0.0", "wl.1.0"]]
    receipts = sent.receipts()
    assert [(r.message_id, r.status, r.work_order_id) for r in receipts] == [
        ("wl.0.0", ReceiptStatus.STORED, "wo-1"),
        ("wl.1.0", ReceiptStatus.STORED, "wo-1"),
    ]
    assert all(r.received_at == NOW and r.id == f"r.{r.message_id}" for r in receipts)
    assert [e.id for e in sent.events()] == ["wo-1.1"]
    assert [k for t, k, _ in sent.records] == [b"wl-underpass-01"] * 2 + [b"wo-1"]
    assert counters == Counter({"alerts.stored": 1, "alerts.redelivered": 1, "workorder_events": 1})


async def test_a_database_outage_is_retried_with_backoff_and_nothing_is_dead_lettered() -> None:
    """Two failed tries (the database down): the state is read again before each retry,
    the waits double from the first, no record is dead-lettered, and the receipts go out
    once, after the try that committed."""
    log: list[str] = []
    sent = Sent(log)
    stale = [False]
    waits: list[float] = []

    async def rebuild() -> None:
        if stale[0]:
            log.append("state read again")
            stale[0] = False

    def invalidate() -> None:
        stale[0] = True

    async def sleep(delay_s: float) -> None:
        waits.append(delay_s)

    retry = DatabaseRetry(rebuild, invalidate, first_delay_s=0.01, max_delay_s=1.0, sleep=sleep)
    tries: list[int] = []

    async def transaction(rows: Sequence[AlertRow]) -> Outcome:
        tries.append(len(rows))
        if len(tries) < 3:
            log.append("connection lost")
            raise psycopg.OperationalError("connection refused")
        log.append("committed")
        return Outcome({"wl.0.0": "wo-1"}, [], new_alerts=1)

    async def store(rows: Sequence[AlertRow]) -> Outcome:
        return await retry.run(f"{len(rows)} alerts", lambda: transaction(rows))

    handler, counters = alert_handler(sent, store, invalidate=invalidate)
    await handler(await validated(alert_bytes(0)))

    assert waits == [0.01, 0.02]
    assert log == [
        "connection lost", "state read again", "connection lost", "state read again",
        "committed", "sent 1",
    ]  # fmt: skip
    assert sent.dead == [] and "dead_letter" not in str(counters)
    assert [r.status for r in sent.receipts()] == [ReceiptStatus.STORED]


async def test_a_store_step_failing_on_every_record_dead_letters_each_and_reads_the_state_again() -> None:  # fmt: skip
    """Not an outage: the batch is stored in halves down to single records; each record
    that fails alone is dead-lettered with the error, the in-memory state is marked stale
    after every failed step (it may have changed before the rollback), nothing is receipted
    as stored."""
    sent = Sent()
    stale: list[bool] = []

    async def store(rows: Sequence[AlertRow]) -> Outcome:
        raise KeyError("a work order the processor lost")

    handler, counters = alert_handler(sent, store, invalidate=lambda: stale.append(True))
    await handler(await validated(alert_bytes(0), alert_bytes(1)))

    assert [(d.offset, d.error_class) for d in sent.dead] == [(0, "KeyError"), (1, "KeyError")]
    assert len(stale) == 3  # the batch, then each half
    assert [r.status for r in sent.receipts()] == [ReceiptStatus.REJECTED] * 2
    assert counters == Counter({"dead_letter.KeyError": 2, "alerts.refused": 2})


async def test_one_poison_record_never_takes_its_neighbours_with_it() -> None:
    """10 good alerts, one the database refuses, 10 good ones, in one batch (the finding of
    issue 16): the poison record alone is dead-lettered and refused; all 20 others are
    stored and get "stored" receipts."""
    sent = Sent()
    committed: list[str] = []

    async def store(rows: Sequence[AlertRow]) -> Outcome:
        if any(row.alert.id == "wl.10.0" for row in rows):
            raise ValueError("COPY failed: invalid byte sequence")  # the whole step rolls back
        committed.extend(row.alert.id for row in rows)
        return Outcome(work_order_of={row.alert.id: "wo-1" for row in rows}, new_alerts=len(rows))

    handler, counters = alert_handler(sent, store)
    await handler(await validated(*(alert_bytes(n) for n in range(21))))

    assert [(d.offset, d.error_class) for d in sent.dead] == [(10, "ValueError")]
    assert sorted(committed) == sorted(f"wl.{n}.0" for n in range(21) if n != 10)
    statuses = {r.message_id: r.status for r in sent.receipts()}
    assert statuses.pop("wl.10.0") is ReceiptStatus.REJECTED
    assert set(statuses.values()) == {ReceiptStatus.STORED} and len(statuses) == 20
    assert counters["alerts.stored"] == 20 and counters["alerts.refused"] == 1


async def test_an_alert_reusing_another_alerts_id_is_dead_lettered_with_both_versions() -> None:
    """A conflict the store step reports is refused: dead letter (its bytes, the stored
    version in the reason), a rejected receipt, and no stored receipt for it."""
    sent = Sent()

    async def store(rows: Sequence[AlertRow]) -> Outcome:
        clash = AlertConflict(rows[1], {"event_time": "2026-07-01 08:00:00+00", "seq": 0})
        return Outcome(work_order_of={rows[0].alert.id: "wo-1"}, new_alerts=1, conflicts=[clash])

    handler, _ = alert_handler(sent, store)
    await handler(await validated(alert_bytes(0), alert_bytes(1)))

    [letter] = sent.dead
    assert (letter.offset, letter.error_class) == (1, "AlertIdConflict")
    assert "already names another alert" in letter.message
    assert "2026-07-01 08:00:00+00" in letter.message and letter.value == alert_bytes(1)
    statuses = [(r.message_id, r.status) for r in sent.receipts()]
    assert statuses == [("wl.1.0", ReceiptStatus.REJECTED), ("wl.0.0", ReceiptStatus.STORED)]


async def test_telemetry_of_a_batch_is_stored_in_one_step_and_counted() -> None:
    """The device-data handler stores a batch's messages of its kind in one call, counts
    what was new and answers nothing."""
    reading = Telemetry(id="t.1", device=SENSOR, event_time=NOW, metrics={"depth_cm": 3.0})
    message = record(0, encode(reading), Channel.TELEMETRY)
    calls: list[list[str]] = []

    async def store(items: list[Telemetry]) -> int:
        calls.append([t.id for t in items])
        return len(items)

    counters: Counter[str] = Counter()
    sent = Sent()
    _, reject, _ = parts(sent)
    await Intake(REGISTRY, reject, DeviceDataHandler(Telemetry, "telemetry", store, counters))(
        [message]
    )
    assert calls == [["t.1"]] and counters == Counter({"telemetry.stored": 1})
    assert sent.dead == [] and sent.records == []
