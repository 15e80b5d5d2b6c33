"""The stream worker's periodic work: the SLA tick, the relay of people's work-order events,
the counters' report and the watch on the Kafka broker's log, each run by a Faust timer.

A Faust timer whose function raises stops for good, so each of these catches everything
but cancellation, logs it and tries again at its next interval; a database outage does not
even get that far (their steps retry through it, see
:mod:`citywatch.stream.db_retry`). Events are sent after the step that made them
committed, and the relay stores its position only after Kafka acknowledged them.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence

from citywatch.contracts import WorkOrderEvent
from citywatch.stream.outbound import Outbound
from citywatch.stream.processor import Outcome

log = logging.getLogger(__name__)

SendEvents = Callable[[Sequence[WorkOrderEvent]], Awaitable[None]]


class SlaTimer:
    """Closes quiet incidents and escalates overdue work orders (``tick``, one committed
    step), then publishes the events that made."""

    def __init__(
        self, tick: Callable[[], Awaitable[Outcome]], outbound: Outbound, counters: Counter[str]
    ) -> None:
        self.tick, self.outbound, self.counters = tick, outbound, counters

    async def run(self) -> None:
        """One tick; never raises."""
        try:
            events = (await self.tick()).events
            await self.outbound.send_events(events)
            self.counters["workorder_events"] += len(events)
        except Exception:  # never let the timer die
            log.exception("SLA tick failed; will retry")


class RelayTimer:
    """Sends the command center's (people's) work-order events to Kafka as well: ``relay``
    reads a page, sends it with the given function and stores its position once sent."""

    def __init__(
        self,
        relay: Callable[[SendEvents], Awaitable[int]],
        outbound: Outbound,
        counters: Counter[str],
    ) -> None:
        self.relay, self.outbound, self.counters = relay, outbound, counters

    async def run(self) -> None:
        """One page; never raises."""
        try:
            self.counters["workorder_events.relayed"] += await self.relay(self.outbound.send_events)
        except Exception:  # never let the timer die
            log.exception("relaying people's work-order events failed; will retry")


class CounterReport:
    """Logs the worker's counters (stored, redelivered, dead-lettered by class, events)."""

    def __init__(self, counters: Counter[str]) -> None:
        self.counters = counters

    async def run(self) -> None:
        if self.counters:
            log.info("stream counters: %s", dict(self.counters))


class BrokerWatch:
    """Notices that the Kafka broker lost the worker's log (restarted empty, lost a topic)
    and starts the worker again from what the broker holds now.

    Why a new start and not a repair in place: such a worker's consumer positions, its
    group's committed offsets, its producer's metadata and Faust's own offset bookkeeping
    (which skips records below the last offset it delivered, and never commits below the
    last it committed) all describe a log that is gone. A fresh start recreates the topics,
    joins the group anew, reads the new log from its start and rebuilds its producer;
    nothing is lost, because what was not stored is sent again by its gateway (no receipt)
    and the database decides what is new. ``lost_log`` says why (or None); ``restart`` is
    called with the reason (the app's is :func:`~citywatch.stream.app.reexec`).
    """

    def __init__(
        self, lost_log: Callable[[], Awaitable[str | None]], restart: Callable[[str], None]
    ) -> None:
        self.lost_log, self.restart = lost_log, restart
        self.failures = 0

    async def run(self) -> None:
        """One check; never raises (a broker that is down is asked again next time)."""
        try:
            reason = await self.lost_log()
        except Exception as exc:  # the broker is down or starting: the next tick asks again
            self.failures += 1
            log.warning("cannot ask the Kafka broker about its log yet: %s", exc)
            return
        if reason is not None:
            log.error("%s: starting the worker again from what the broker holds now", reason)
            self.restart(reason)
