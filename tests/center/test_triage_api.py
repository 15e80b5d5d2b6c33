"""The duty officer's API on the real database: short work-order numbers the database gives
out, the list by urgency, dispatch away from the routed department only with a reason,
orders opened by hand from a 12345 call that join an open order at the same spot, and the
CSV exports."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tests.center.conftest import auth
from tests.center.seed import seed_order

pytestmark = pytest.mark.integration

NUMBER = re.compile(r"^DEMO-\d{8}-\d{4}$")


def number_of(conn: psycopg.Connection, order_id: str) -> str:
    row = conn.execute("SELECT number FROM work_orders WHERE id = %s", (order_id,)).fetchone()
    assert row is not None
    return str(row[0])


def test_every_order_gets_a_short_number_that_an_upsert_keeps(client, db, demo_config) -> None:  # type: ignore[no-untyped-def]
    """Numbers read site-date-sequence, count up within the day, and survive the stream's
    upsert of the same row; the list and the detail show them beside the machine id."""
    opened = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)  # 11:00 in Shanghai: the 6th there
    first = seed_order(db, demo_config, opened_at=opened, community="c-numbers")
    second = seed_order(db, demo_config, opened_at=opened + timedelta(minutes=1),
                        community="c-numbers")  # fmt: skip
    one, two = number_of(db, first.id), number_of(db, second.id)
    assert NUMBER.match(one) and NUMBER.match(two), (one, two)
    assert one.startswith("DEMO-20261206-")
    assert int(two[-4:]) == int(one[-4:]) + 1
    db.execute(
        """INSERT INTO work_orders (id, kind, category_code, department, priority, state,
               sla_tier, opened_at, clock_started_at, last_activity)
           SELECT id, kind, category_code, department, 2, state, sla_tier, opened_at,
                  clock_started_at, last_activity FROM work_orders WHERE id = %s
           ON CONFLICT (id) DO UPDATE SET priority = EXCLUDED.priority""",
        (first.id,),
    )
    db.commit()
    assert number_of(db, first.id) == one
    listed = client.get("/api/v1/work-orders", params={"community": "c-numbers"},
                        headers=auth("viewer")).json()["items"]  # fmt: skip
    assert {o["number"] for o in listed} == {one, two}
    detail = client.get(f"/api/v1/work-orders/{first.id}", headers=auth("viewer")).json()
    assert (detail["number"], detail["id"]) == (one, first.id)


def test_the_urgency_order_puts_overdue_then_priority_then_least_time_left(
    client, db, demo_config
) -> None:  # type: ignore[no-untyped-def]
    """Overdue first (most overdue first), then P1 → P4, ties by due time; it pages by
    cursor without repeating or losing a row."""
    now = datetime.now(UTC)
    spec = {  # name: (priority, due in minutes)
        "late-p4": (4, -30), "later-p3": (3, -90), "p1-soon": (1, 10), "p1-later": (1, 50),
        "p2": (2, 5), "p4": (4, 600),
    }  # fmt: skip
    ids = {}
    for name, (priority, due_min) in spec.items():
        order = seed_order(db, demo_config, priority=priority, community="c-urgency")
        db.execute("UPDATE work_orders SET due_at = %s WHERE id = %s",
                   (now + timedelta(minutes=due_min), order.id))  # fmt: skip
        ids[order.id] = name
    db.commit()
    seen: list[str] = []
    cursor = None
    while True:
        params = {"community": "c-urgency", "sort": "urgency", "limit": 4}
        page = client.get("/api/v1/work-orders", params=params | ({"cursor": cursor} if cursor else {}),
                          headers=auth("viewer")).json()  # fmt: skip
        seen += [ids[o["id"]] for o in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ["later-p3", "late-p4", "p1-soon", "p1-later", "p2", "p4"]
    newest = client.get("/api/v1/work-orders", params={"cursor": cursor or "x"},
                        headers=auth("viewer"))  # fmt: skip
    assert newest.status_code == 422


def test_dispatch_elsewhere_than_the_routed_department_needs_a_reason_that_is_kept(
    client, db, demo_config
) -> None:  # type: ignore[no-untyped-def]
    """Parking routes to urban management: traffic police without a reason is 422; with one
    the timeline's event and the audit trail keep it and name the routed department."""
    order = seed_order(db, demo_config)
    url = f"/api/v1/work-orders/{order.id}/actions/dispatch"
    detail = client.get(f"/api/v1/work-orders/{order.id}", headers=auth("viewer")).json()
    assert detail["routed_department"] == "urban-mgmt"
    refused = client.post(url, json={"department": "traffic-police"}, headers=auth("operator"))
    assert refused.status_code == 422 and "reason" in refused.json()["detail"]
    done = client.post(url, json={"department": "traffic-police", "reason": "blocks the lane"},
                       headers=auth("operator"))  # fmt: skip
    assert done.status_code == 200, done.text
    event = done.json()["timeline"][-1]
    assert event["event"] == "dispatched" and event["reason"] == "blocks the lane"
    assert event["data"] == {"department": "traffic-police", "routed_department": "urban-mgmt"}
    audit = client.get("/api/v1/admin/audit", params={"action": "workorder.dispatch"},
                       headers=auth("admin")).json()["items"]  # fmt: skip
    mine = [r for r in audit if r["target"] == order.id]
    assert mine[0]["detail"]["reason"] == "blocks the lane"
    assert mine[0]["detail"]["routed_department"] == "urban-mgmt"


def test_a_hotline_call_opens_an_order_and_a_second_call_at_the_spot_joins_it(
    client, db, demo_config
) -> None:  # type: ignore[no-untyped-def]
    """A call opens a filed order with a number; a call 10 m away about the same kind joins
    it as a complaint event; another kind at the spot, or 100 m away for a 30 m radius, opens
    its own; a viewer cannot; both calls are audited."""
    spot = {"lat": 31.4401, "lon": 119.4702}
    call = {"kind": "street_vending", "description": "烧烤摊占道 barbecue stall on the walk",
            "contact": "138-0000-0000", **spot}  # fmt: skip
    assert client.post("/api/v1/work-orders", json=call, headers=auth("viewer")).status_code == 403
    opened = client.post("/api/v1/work-orders", json=call, headers=auth("operator"))
    assert opened.status_code == 201, opened.text
    order = opened.json()["work_order"]
    assert opened.json()["joined"] is False
    assert NUMBER.match(order["number"]) and order["state"] == "filed"
    assert order["reported_via"] == "hotline" and order["department"] == "urban-mgmt"
    assert order["report"] == {"description": call["description"], "contact": "138-0000-0000"}
    assert [e["actor"] for e in order["timeline"]] == ["operator", "operator"]

    near = call | {"lat": spot["lat"] + 0.00009, "description": "again, still there",
                   "reported_via": "citizen", "contact": None}  # fmt: skip
    joined = client.post("/api/v1/work-orders", json=near, headers=auth("operator"))
    assert joined.status_code == 200, joined.text
    assert joined.json()["joined"] is True and joined.json()["work_order"]["id"] == order["id"]
    complaint = joined.json()["work_order"]["timeline"][-1]
    assert complaint["event"] == "complaint" and complaint["reason"] == "again, still there"
    assert complaint["data"]["reported_via"] == "citizen" and complaint["data"]["distance_m"] < 15

    other_kind = client.post("/api/v1/work-orders", json=call | {"kind": "illegal_parking"},
                             headers=auth("operator")).json()  # fmt: skip
    far = client.post("/api/v1/work-orders", json=call | {"lat": spot["lat"] + 0.0009},
                      headers=auth("operator")).json()  # fmt: skip
    assert not other_kind["joined"] and not far["joined"]
    assert len({order["id"], other_kind["work_order"]["id"], far["work_order"]["id"]}) == 3
    bad = client.post("/api/v1/work-orders", json=call | {"district": "d-nowhere"},
                      headers=auth("operator"))  # fmt: skip
    assert bad.status_code == 422 and "d-nowhere" in bad.text
    actions = [r["action"] for r in client.get("/api/v1/admin/audit", headers=auth("admin"))
               .json()["items"] if r["target"] == order["id"]]  # fmt: skip
    assert actions == ["workorder.complaint", "workorder.opened"]


def test_the_list_and_the_kpis_export_as_csv_under_the_same_filters(
    client, db, demo_config
) -> None:  # type: ignore[no-untyped-def]
    """The list's CSV holds the filtered rows with numbers (BOM for spreadsheets); the KPI
    CSV has one row per group and the totals, for the asked range."""
    kept = seed_order(db, demo_config, kind="smoke", priority=1, community="c-export")
    seed_order(db, demo_config, kind="illegal_parking", community="c-export")
    response = client.get("/api/v1/work-orders.csv", params={"community": "c-export",
                          "kind": "smoke"}, headers=auth("viewer"))  # fmt: skip
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert response.text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(response.text.lstrip("\ufeff"))))
    assert [(r["id"], r["kind"], r["priority"]) for r in rows] == [(kept.id, "smoke", "1")]
    assert NUMBER.match(rows[0]["number"])
    since = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    kpi = client.get("/api/v1/kpis.csv", params={"by": "kind", "since": since},
                     headers=auth("viewer"))  # fmt: skip
    assert kpi.status_code == 200
    table = list(csv.DictReader(io.StringIO(kpi.text.lstrip("\ufeff"))))
    assert table[-1]["key"] == "all" and "smoke" in {r["key"] for r in table}
    assert int(table[-1]["total"]) >= 2
    assert "kpis-kind-" in kpi.headers["content-disposition"]
