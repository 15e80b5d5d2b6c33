"""The alert lane's handler: a batch of valid alerts stored and folded into work orders in
one step, then answered (a receipt per alert, the work-order events it caused).

The order is the worker's at-least-once contract: the store step commits first (in the
worker, :meth:`~citywatch.stream.worker_db.WorkerDatabase.store_alerts`: one transaction,
retried through database outages), the receipts and events are sent only after it
returned and this handler returns only after the broker acknowledged them; the lane
acknowledges the batch's offsets after that. A gateway deletes an alert on its receipt, so
a receipt before the commit could lose it; an offset before the receipt could leave a
device without one after a crash (it resends; the database decides what is new).

One bad record never takes a good one with it. A store step that fails for any reason
other than an outage (outages are retried inside the step) is split in halves, each
stored in a step of its own, down to the single records that fail alone: those are
rejected with the reason, every other record is stored and answered (the in-memory state is
read again from the database after each failure: the failed step may have changed it before
the rollback). An alert whose id already names another alert comes back from the store step
as a conflict and is rejected too, with the stored version in the reason.
"""

from __future__ import annotations

import json
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
from citywatch.stream.sink import AlertConflict, AlertRow, KafkaPosition

log = logging.getLogger(__name__)

StoreAlerts = Callable[[Sequence[AlertRow]], Awaitable[Outcome]]
"""The store step: rows stored and folded into work orders, committed when it returns."""


class AlertIdConflict(Exception):
    """An alert reused the id of another alert (the dead letter's error class)."""

    def __init__(self, conflict: AlertConflict) -> None:
        stored = json.dumps(conflict.stored, default=str, ensure_ascii=False)
        super().__init__(f"{conflict.reason}; the stored version: {stored}")


def merged(outcomes: Sequence[Outcome]) -> Outcome:
    """The outcomes of a batch stored in parts, as one."""
    whole = Outcome()
    for part in outcomes:
        whole.work_order_of.update(part.work_order_of)
        whole.events += part.events
        whole.new_alerts += part.new_alerts
        whole.conflicts += part.conflicts
    return whole


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
        record_of = {id(row): record for row, (record, _) in zip(rows, batch, strict=True)}
        outcomes, failed = await self.stored(rows)
        for row, error in failed:
            await self.reject(record_of[id(row)], error)
        outcome = merged(outcomes)
        for conflict in outcome.conflicts:
            await self.reject(record_of[id(conflict.row)], AlertIdConflict(conflict))
        refused = {id(row) for row, _ in failed} | {id(c.row) for c in outcome.conflicts}
        stored = [row for row in rows if id(row) not in refused]
        self.counters["alerts.refused"] += len(refused)
        if stored or outcome.events:
            await self.answer(stored, outcome)

    def rows(self, batch: Sequence[Validated]) -> list[AlertRow]:
        """The alerts of a batch as rows: with where they were read from and their district
        (the alert lane carries nothing but alerts: one row per record, in order)."""
        return [
            AlertRow(m, KafkaPosition(r.topic, r.partition, r.offset), self.district_of(m))
            for r, m in batch
            if isinstance(m, Alert)
        ]

    async def stored(
        self, rows: Sequence[AlertRow]
    ) -> tuple[list[Outcome], list[tuple[AlertRow, Exception]]]:
        """Store ``rows``; when the step fails (not an outage: those it retries), store each
        half on its own, down to the rows that fail alone. The outcomes of the parts that
        were stored, and each row that failed alone with its error."""
        if not rows:
            return [], []
        try:
            return [await self.store(rows)], []
        except Exception as exc:  # a record this step cannot store: find it, keep the rest
            self.invalidate()
            if len(rows) == 1:
                log.exception(
                    "alert %s cannot be stored: dead-lettering it", rows[0].alert.id,
                    extra={"device": rows[0].alert.device.id, "alert_id": rows[0].alert.id},
                )  # fmt: skip
                return [], [(rows[0], exc)]
            log.warning(
                "a batch of %d alerts failed (%s: %s); storing it in halves to find the record",
                len(rows), type(exc).__name__, exc,
            )  # fmt: skip
            middle = len(rows) // 2
            first_done, first_failed = await self.stored(rows[:middle])
            second_done, second_failed = await self.stored(rows[middle:])
            return first_done + second_done, first_failed + second_failed

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
