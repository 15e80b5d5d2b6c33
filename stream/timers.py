"""The stream worker's periodic work: the SLA tick, the relay of people's work-order events
and the counters' report, each run by a Faust timer.

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
