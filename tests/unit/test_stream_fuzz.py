"""Property tests of the worker's uplink (issue 16): whatever bytes arrive, each record ends
stored or dead-lettered with a reason, and a bad record never changes what happens to a
good neighbour. The parts run as in the worker (intake → alert handler → rejections); the
store step is a function that keeps rows, refusing the rows a database would (a rule named
``refused-by-the-database`` stands for a constraint validation cannot foresee)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from citywatch.contracts import ReceiptStatus
from citywatch.stream.alert_handler import AlertHandler
from citywatch.stream.intake import Intake
from citywatch.stream.processor import Outcome
from citywatch.stream.sink import AlertRow
from tests.unit.test_stream_uplink import NOW, REGISTRY, Sent, alert_bytes, parts, record

REFUSED_RULE = "refused-by-the-database"


def good(n: int) -> bytes:
    return alert_bytes(n)


def mutated(n: int, how: str, junk: object) -> bytes:
    """Alert ``n`` broken the ways devices break them."""
    raw = json.loads(alert_bytes(n))
    if how == "field":
        raw["rule"] = junk
    elif how == "attribute":
        raw["attributes"] = {"x": junk}
    elif how == "time":
        raw["event_time"] = junk
    elif how == "db":
        raw["rule"] = REFUSED_RULE
    return json.dumps(raw, allow_nan=True).encode()


JUNK = st.one_of(st.text(st.characters(exclude_categories=()), max_size=8), st.floats(),
                 st.integers(), st.none(), st.just("0001-01-01T00:00:00Z"))  # fmt: skip
BAD = st.one_of(
    st.binary(max_size=64),
    st.tuples(st.sampled_from(["field", "attribute", "time", "db"]), JUNK),
)
BATCHES = st.lists(st.one_of(st.just(None), BAD), min_size=1, max_size=24)
"""A batch: ``None`` is a good alert, anything else a bad record of that kind."""


def run(values: Sequence[bytes]) -> tuple[Sent, set[str]]:
    """The batch through the worker's parts; what it sent and what the store kept."""
    sent = Sent()
    stored: set[str] = set()

    async def store(rows: Sequence[AlertRow]) -> Outcome:
        if any(row.alert.rule == REFUSED_RULE for row in rows):
            raise ValueError("new row for relation alerts violates a check constraint")
        stored.update(row.alert.id for row in rows)
        return Outcome(new_alerts=len(rows))

    outbound, reject, _ = parts(sent)
    handler = AlertHandler(store=store, district_of=lambda _: "d-1", outbound=outbound,
                           reject=reject, invalidate=lambda: None, counters=Counter(),
                           clock=lambda: NOW)  # fmt: skip
    intake = Intake(REGISTRY, reject, handler)
    asyncio.run(intake([record(offset, value) for offset, value in enumerate(values)]))
    return sent, stored


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=BATCHES)
def test_every_record_ends_stored_or_dead_lettered_and_bad_ones_spare_their_neighbours(
    batch: list[object],
) -> None:
    """Each record is dead-lettered with a reason or stored with a "stored" receipt, never
    both, never neither; the good alerts fare exactly as they would without the bad ones."""
    values = []
    for n, item in enumerate(batch):
        if item is None:
            values.append(good(n))
        elif isinstance(item, bytes):
            values.append(item)
        else:
            how, junk = item  # type: ignore[misc]
            values.append(mutated(n, how, junk))
    sent, stored = run(values)
    dead = {letter.offset: letter for letter in sent.dead}
    assert all(letter.error_class and letter.message for letter in dead.values())
    receipts = sent.receipts()
    stored_receipts = {r.message_id for r in receipts if r.status is ReceiptStatus.STORED}
    assert stored == stored_receipts
    good_ids = {f"wl.{n}.0" for n, item in enumerate(batch) if item is None}
    assert good_ids <= stored, "a good alert was lost next to a bad one"
    for n, item in enumerate(batch):  # a mutation may still be a valid alert: then stored
        ended_stored = not isinstance(item, bytes) and f"wl.{n}.0" in stored
        assert (n in dead) != ended_stored, f"record {n} ({item!r}) ended neither or both ways"
    alone, alone_stored = run([good(n) for n, item in enumerate(batch) if item is None])
    assert alone_stored == good_ids and not alone.dead
    rejected = {r.message_id for r in receipts if r.status is ReceiptStatus.REJECTED}
    assert not rejected & good_ids
