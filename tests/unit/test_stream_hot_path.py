"""The stream worker's hot path writes what the validated models would (issue 22): receipts
written without building a Receipt, JSON columns written by pydantic-core's encoder, work-order
events built without validation."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from citywatch.config import CitywatchConfig
from citywatch.contracts import (
    AlertKind,
    DeviceRef,
    KafkaTopics,
    Receipt,
    ReceiptStatus,
    WorkOrderEvent,
    encode,
)
from citywatch.stream.outbound import Outbound
from citywatch.stream.processor import AlertProcessor
from citywatch.stream.sink import json_text
from citywatch.workorder.lifecycle import as_message
from tests.unit.test_processor_fold import sighting

SENSOR = DeviceRef(site="demo", kind="sensor", id="wl-underpass-01")
NOW = datetime(2026, 7, 1, 8, 0, 0, 123456, tzinfo=UTC)


async def _unused_send(records: object) -> None:
    raise AssertionError("not sent in these tests")


@pytest.mark.parametrize(
    ("status", "work_order", "reason"),
    [
        (ReceiptStatus.STORED, "wo.1", None),
        (ReceiptStatus.STORED, None, None),
        (ReceiptStatus.REJECTED, None, "depth_cm 900 cm is outside what 水位计 can measure"),
    ],
)
def test_a_receipt_written_from_validated_fields_is_the_receipt_models_json(
    status: ReceiptStatus, work_order: str | None, reason: str | None
) -> None:
    """The fast receipt's bytes equal encode() of the validated Receipt, None fields left out."""
    outbound = Outbound(KafkaTopics("citywatch"), _unused_send)
    topic, key, value = outbound.receipt(
        SENSOR, "wl.1.0", status, NOW, work_order=work_order, reason=reason
    )
    model = Receipt(
        id="r.wl.1.0", message_id="wl.1.0", device=SENSOR, status=status, received_at=NOW,
        work_order_id=work_order, reason=reason,
    )  # fmt: skip
    assert (topic, key, value) == ("citywatch.receipts", b"wl-underpass-01", encode(model))
    assert outbound.receipt(
        SENSOR, "wl.1.0", status, NOW, work_order=work_order, reason=reason, validated=False
    )[2] == encode(model)


def test_json_columns_hold_the_values_json_dumps_wrote() -> None:
    """json_text parses back to what json.dumps wrote, non-ASCII text and models included."""
    values: list[object] = [
        {"depth_cm": 12.5, "zone": "下穿隧道", "count": 3, "ok": True},
        [],
        sorted({"b", "a"}),
    ]
    for value in values:
        assert json.loads(json_text(value)) == json.loads(json.dumps(value))
    assert json.loads(json_text({"at": NOW})) == {"at": "2026-07-01T08:00:00.123456Z"}


def test_work_order_events_built_by_the_worker_validate_unchanged(
    demo_config: CitywatchConfig,
) -> None:
    """Events built without validation (opened, filed, absorbed, merged) are what validation
    would build."""
    processor = AlertProcessor(demo_config)
    parking = AlertKind.ILLEGAL_PARKING
    alerts = [sighting("live", i, 60 + 10 * i, "cam-renmin-101", parking) for i in range(2)]
    alerts += [sighting("gw", i, 10 * i, "cam-renmin-102", parking) for i in range(5)]
    events = []
    for alert in alerts:
        _, _, transitions, _ = processor._fold(alert)
        events += [as_message(processor.orders[t.work_order_id], t) for t in transitions]
    assert {"absorbed", "merged"} <= {e.event for e in events}
    for event in events:
        assert WorkOrderEvent.model_validate(event.model_dump()) == event
        assert encode(WorkOrderEvent.model_validate_json(encode(event))) == encode(event)
