"""The alert lane's handler: a batch of valid alerts stored and folded into work orders in
one step, then answered (a receipt per alert, the work-order events it caused).

The order is the worker's at-least-once contract: the store step commits first (in the
worker, :meth:`~citywatch.stream.worker_db.WorkerDatabase.store_alerts`: one transaction,
retried through database outages), the receipts and events are sent only after it
returned and this handler returns only after the broker acknowledged them; the lane
acknowledges the batch's offsets after that. A gateway deletes an alert on its receipt, so
a receipt before the commit could lose it; an offset before the receipt could leave a
device without one after a crash (it resends; the database decides what is new).

A store step that fails for any reason other than an outage (a bug on this batch) has
every record of the batch rejected with the reason, and the in-memory state read again
from the database (the failed step may have changed it before the rollback). Poison-record
isolation (find the one record a batch fails on) belongs in :meth:`AlertHandler.stored`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence

from citywatch.contracts import Alert, ReceiptStatus
from citywatch.stream.clock import Clock, utc_now
from citywatch.stream.intake import Validated
from citywatch.stream.kafka_batches import Record
from citywatch.stream.outbound import Outbound
from citywatch.stream.processor import Outcome
from citywatch.stream.rejections import Reject
from citywatch.stream.sink import AlertRow, KafkaPosition

log = logging.getLogger(__name__)

StoreAlerts = Callable[[Sequence[AlertRow]], Awaitable[Outcome]]
"""The store step: rows stored and folded into work orders, committed when it returns."""


class AlertHandler:
    """Stores a batch of alerts, then answers it (see the module doc).

    ``store`` is the store step; ``district_of`` places an alert in its district (kept with
    its row); ``invalidate`` marks the in-memory state stale after a failed store step;
    ``clock`` gives the receipts' ``received_at``.
    """

    def __init__(
        self,
        *,
        store: StoreAlerts,
        district_of: Callable[[Alert], str],
        outbound: Outbound,
        reject: Reject,
        invalidate: Callable[[], None],
        counters: Counter[str],
        clock: Clock = utc_now,
    ) -> None:
        self.store, self.district_of, self.outbound = store, district_of, outbound
        self.reject, self.invalidate = reject, invalidate
        self.counters, self.clock = counters, clock

    async def __call__(self, batch: Sequence[Validated]) -> None:
        rows = self.rows(batch)
        outcome = await self.stored(batch, rows)
        if outcome is not None:
            await self.answer(rows, outcome)

    def rows(self, batch: Sequence[Validated]) -> list[AlertRow]:
        """The alerts of a batch as rows: with where they were read from and their district."""
        return [
            AlertRow(m, KafkaPosition(r.topic, r.partition, r.offset), self.district_of(m))
            for r, m in batch
            if isinstance(m, Alert)
        ]

    async def stored(self, batch: Sequence[Validated], rows: list[AlertRow]) -> Outcome | None:
        """The store step's outcome for ``rows``; ``None`` when it failed (not an outage:
        those it retries): then the whole batch was rejected with the reason."""
        try:
            return await self.store(rows)
        except Exception as exc:  # a bug on one batch: dead-letter it, keep the stream going
            log.exception("unexpected error storing a batch of %d alerts", len(rows))
            for record, _ in batch:
                await self.reject(record, exc)
            self.invalidate()
            return None

    def receipts(self, rows: Sequence[AlertRow], outcome: Outcome) -> list[Record]:
        """A ``stored`` receipt per row, naming the work order its alert joined (a
        redelivered alert's too: the store step looks it up)."""
        received_at = self.clock()
        return [
            self.outbound.receipt(
                alert.device,
                alert.id,
                ReceiptStatus.STORED,
                received_at,
                work_order=outcome.work_order_of.get(alert.id),
            )
            for alert in (row.alert for row in rows)
        ]

    async def answer(self, rows: Sequence[AlertRow], outcome: Outcome) -> None:
        """Send the receipts of stored rows and the events they caused; wait for the acks."""
        await self.outbound.send(
            self.receipts(rows, outcome) + self.outbound.events(outcome.events)
        )
        self.counters["workorder_events"] += len(outcome.events)
        self.counters["alerts.stored"] += outcome.new_alerts
        self.counters["alerts.redelivered"] += len(rows) - outcome.new_alerts
