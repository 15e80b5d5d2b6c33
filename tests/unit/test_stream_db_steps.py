"""How the stream worker's database steps outlast outages and stale state, and how its
timers keep going, without the stack (stream/db_retry.py, readiness.py, timers.py). The
steps are functions given to these parts; the faults they raise are the ones psycopg and
the work-order store raise, which a unit test cannot cause for real."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import psycopg
import pytest
from faust.types import TP

from citywatch.contracts import KafkaTopics, WorkOrderEvent, decode
from citywatch.storage.workorders import StaleWorkOrders
from citywatch.stream.db_retry import DatabaseRetry
from citywatch.stream.kafka_batches import Record
from citywatch.stream.outbound import Outbound
from citywatch.stream.processor import Outcome
from citywatch.stream.readiness import Readiness
from citywatch.stream.timers import RelayTimer, SlaTimer

NOW = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
TOPICS = KafkaTopics("citywatch")


class Database:
    """Step outcomes in order (an exception to raise or a value to return), and a record of
    what the retry did around them."""

    def __init__(self, *outcomes: object) -> None:
        self.outcomes = list(outcomes)
        self.log: list[str] = []
        self.waits: list[float] = []
        self.readiness = Readiness(self.rebuild)

    async def rebuild(self) -> None:
        self.log.append("state read")

    async def step(self) -> object:
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            self.log.append(type(outcome).__name__)
            raise outcome
        self.log.append("committed")
        return outcome

    async def sleep(self, delay_s: float) -> None:
        self.waits.append(delay_s)

    def retry(self, first_delay_s: float = 0.01, max_delay_s: float = 0.04) -> DatabaseRetry:
        return DatabaseRetry(
            self.readiness.ensure, self.readiness.invalidate, first_delay_s=first_delay_s,
            max_delay_s=max_delay_s, sleep=self.sleep,
        )  # fmt: skip


def outage() -> psycopg.OperationalError:
    return psycopg.OperationalError("server closed the connection unexpectedly")


@pytest.mark.parametrize(
    "fault",
    [outage, lambda: psycopg.errors.AdminShutdown("terminating connection")],
    ids=["connection lost", "admin shutdown"],
)
async def test_an_outage_is_retried_on_state_read_again_with_doubling_waits_up_to_the_cap(
    fault: Callable[[], Exception],
) -> None:
    """Five failed tries: waits of 10, 20, 40, 40, 40 ms (the cap), the state read again
    before every retry, then the step's result."""
    db = Database(*(fault() for _ in range(5)), 42)
    assert await db.retry().run("a batch", db.step) == 42
    assert db.waits == [0.01, 0.02, 0.04, 0.04, 0.04]
    name = db.log[1]
    assert db.log == ["state read", *[name, "state read"] * 5, "committed"]
    assert db.readiness.ready


async def test_work_orders_changed_by_a_person_are_read_again_and_retried_at_once() -> None:
    """A stale-work-orders refusal is not an outage: no wait, the state read again, retried."""
    db = Database(StaleWorkOrders(["wo-7"]), "done")
    assert await db.retry().run("a batch", db.step) == "done"
    assert db.waits == []
    assert db.log == ["state read", "StaleWorkOrders", "state read", "committed"]


async def test_an_error_that_is_not_an_outage_is_raised_at_once() -> None:
    """A bug is the caller's to handle (it dead-letters the batch): no retry, no wait."""
    db = Database(ValueError("a bug"), "never")
    with pytest.raises(ValueError, match="a bug"):
        await db.retry().run("a batch", db.step)
    assert db.waits == [] and db.log == ["state read", "ValueError"]


async def test_a_failed_rebuild_is_retried_like_the_step() -> None:
    """The database still down while the state is read again: that is retried as well."""
    rebuilds: list[str] = []
    outcomes: list[Exception | None] = [outage(), None]

    async def rebuild() -> None:
        failure = outcomes.pop(0)
        rebuilds.append("failed" if failure else "read")
        if failure:
            raise failure

    readiness = Readiness(rebuild)
    waits: list[float] = []

    async def sleep(delay_s: float) -> None:
        waits.append(delay_s)

    async def step() -> str:
        return "stored"

    retry = DatabaseRetry(readiness.ensure, readiness.invalidate, first_delay_s=0.01, sleep=sleep)
    assert await retry.run("a batch", step) == "stored"
    assert rebuilds == ["failed", "read"] and waits == [0.01]


async def test_steps_waiting_on_a_stale_state_read_it_once() -> None:
    """Three steps arrive while the state is stale: one rebuild serves them all."""
    reads: list[int] = []

    async def rebuild() -> None:
        reads.append(1)
        await asyncio.sleep(0.01)

    readiness = Readiness(rebuild)
    await asyncio.gather(*(readiness.ensure() for _ in range(3)))
    assert reads == [1] and readiness.ready
    readiness.invalidate()
    await readiness.ensure()
    assert reads == [1, 1]


@pytest.mark.parametrize(
    ("before", "after", "stale"),
    [
        ({0, 1}, {0, 1, 2}, True),
        ({0, 1, 2}, {0, 1}, False),
        ({0, 1}, {0, 1}, False),
        ({0}, {1}, True),
    ],
    ids=["one arrives", "one leaves", "same partitions", "all moved"],
)
async def test_only_partitions_arriving_from_another_worker_make_the_state_stale(
    before: set[int], after: set[int], stale: bool
) -> None:
    """Arriving partitions come with work orders another worker opened: read them; a
    rebalance that only takes partitions away reads nothing."""

    async def rebuild() -> None:
        return None

    readiness = Readiness(rebuild)
    readiness.partitions_assigned({TP("citywatch.alerts", p) for p in before})
    await readiness.ensure()
    readiness.partitions_assigned({TP("citywatch.alerts", p) for p in after})
    assert readiness.ready is not stale


def event(n: int) -> WorkOrderEvent:
    return WorkOrderEvent(id=f"wo-1.{n}", work_order_id="wo-1", event="escalated",
                          state="dispatched", actor="citywatch", time=NOW)  # fmt: skip


def outbound(sent: list[Record]) -> Outbound:
    async def send(records: Sequence[Record]) -> None:
        sent.extend(records)

    return Outbound(TOPICS, send)


async def test_the_sla_tick_publishes_the_events_it_committed_and_survives_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A tick's events go out keyed by work order; a tick that fails is logged, not raised
    (a Faust timer that raises stops for good), and the next tick runs."""
    sent: list[Record] = []
    ticks: list[Outcome | Exception] = [RuntimeError("a bug"), Outcome(events=[event(1), event(2)])]

    async def tick() -> Outcome:
        outcome = ticks.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    counters: Counter[str] = Counter()
    timer = SlaTimer(tick, outbound(sent), counters)
    with caplog.at_level(logging.ERROR):
        await timer.run()
    assert sent == [] and "SLA tick failed" in caplog.text
    await timer.run()
    assert [(t, k) for t, k, _ in sent] == [(TOPICS.workorder_events, b"wo-1")] * 2
    assert [decode(v, WorkOrderEvent).id for _, _, v in sent] == ["wo-1.1", "wo-1.2"]
    assert counters == Counter({"workorder_events": 2})


async def test_the_relay_sends_a_page_through_the_outbound_and_counts_it() -> None:
    """The relay is handed the send that waits for the broker's acks; what it relayed is
    counted, and a failing relay leaves the timer running."""
    sent: list[Record] = []
    calls: list[str] = []

    async def relay(send: Callable[[Sequence[WorkOrderEvent]], Awaitable[None]]) -> int:
        calls.append("relay")
        if len(calls) == 2:
            raise psycopg.errors.UndefinedTable("feed_relays")
        await send([event(3)])
        return 1

    counters: Counter[str] = Counter()
    timer = RelayTimer(relay, outbound(sent), counters)
    await timer.run()
    await timer.run()
    assert calls == ["relay", "relay"]
    assert [decode(v, WorkOrderEvent).id for _, _, v in sent] == ["wo-1.3"]
    assert counters == Counter({"workorder_events.relayed": 1})
