"""The pure parts of the duty officer's list and forms: urgency cursors that refuse forgeries,
the urgency rank, CSV cells a spreadsheet cannot run, and where a hand-made report is
filed in the grid."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from citywatch.center.hotline import ManualReport, placement
from citywatch.center.workorder_queries import (
    BadCursor,
    UrgencyKey,
    csv_text,
    decode_any_cursor,
    decode_cursor,
    encode_cursor,
    encode_urgency_cursor,
    urgency_rank,
)
from citywatch.config import CitywatchConfig
from citywatch.workorder.lifecycle import ActionArgumentError

NOW = datetime(2026, 12, 6, 9, 30, tzinfo=UTC)


def forged(parts: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


def test_urgency_cursors_round_trip_and_stay_apart_from_newest_first_ones() -> None:
    """An urgency cursor decodes to its key (a missing due time too); each order's cursor
    is refused by the other order's decoder."""
    key = UrgencyKey(NOW, 0, 1, NOW - timedelta(minutes=5), "inc.a")
    assert decode_any_cursor(encode_urgency_cursor(key)) == key
    open_ended = UrgencyKey(NOW, 1, 4, None, "hotline.x")
    assert decode_any_cursor(encode_urgency_cursor(open_ended)) == open_ended
    with pytest.raises(BadCursor):
        decode_cursor(encode_urgency_cursor(key))
    assert decode_any_cursor(encode_cursor(NOW, "inc.a")) == (NOW, "inc.a")


@pytest.mark.parametrize(
    "parts",
    [
        pytest.param(["u", "2026-12-06T09:30:00", 0, 1, None, "x"], id="naive time"),
        pytest.param(["u", NOW.isoformat(), 2, 1, None, "x"], id="rank out of range"),
        pytest.param(["u", NOW.isoformat(), 0, True, None, "x"], id="boolean priority"),
        pytest.param(["u", NOW.isoformat(), 0, 1, None, "a\x00b"], id="NUL in the id"),
        pytest.param(["u", NOW.isoformat(), 0, 1, 5, "x"], id="due time not text"),
        pytest.param(["u", NOW.isoformat(), 0, 1], id="too short"),
    ],
)
def test_forged_urgency_cursors_are_refused(parts: object) -> None:
    """Nothing but a cursor this API made reaches the database."""
    with pytest.raises(BadCursor):
        decode_any_cursor(forged(parts))


@pytest.mark.parametrize(
    ("state", "due_in_min", "rank"),
    [("filed", -1, 0), ("filed", 1, 1), ("dispatched", -60, 0), ("resolved", -60, 1),
     ("filed", None, 1)],
)  # fmt: skip
def test_only_open_orders_past_due_rank_first(
    state: str, due_in_min: int | None, rank: int
) -> None:
    """A handled order past its old due time is not urgent; one without a due time is not."""
    due = None if due_in_min is None else NOW + timedelta(minutes=due_in_min)
    assert urgency_rank({"state": state, "due_at": due}, NOW) == rank


def test_csv_has_a_bom_iso_times_and_no_formulas() -> None:
    """Spreadsheets read it as UTF-8, and a cell a caller typed as =HYPERLINK(…) stays text."""
    text = csv_text(["id", "opened_at", "note"], [["a", NOW, '=HYPERLINK("x")'], ["b", None, "-1"]])
    assert text.startswith("\ufeffid,opened_at,note\r\n")
    assert "2026-12-06T09:30:00+00:00" in text
    assert "'=HYPERLINK" in text and ",'-1" in text and "b,," in text


def test_a_report_is_filed_in_the_named_grid_cell_or_the_first_district(
    demo_config: CitywatchConfig,
) -> None:
    """Ids must be of the right level of the site's grid; no place: the first district."""
    base = {"kind": "street_vending", "description": "stall"}
    first = demo_config.site.districts[0]
    street = first.streets[0]
    community = street.communities[0]
    assert placement(ManualReport.model_validate(base), demo_config).district == first.id
    cell = ManualReport.model_validate(
        base | {"district": first.id, "street": street.id, "community": community.id}
    )
    assert placement(cell, demo_config).community == community.id
    with pytest.raises(ActionArgumentError, match="not a community"):
        placement(ManualReport.model_validate(base | {"community": street.id}), demo_config)
