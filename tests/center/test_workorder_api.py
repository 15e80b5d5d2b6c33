"""The work-order API on the real database: who may do what, every action of the state
machine, its refusals, the list's filters and paging, and one order in full."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.center.conftest import auth
from tests.center.seed import seed_order

pytestmark = pytest.mark.integration

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64


@pytest.fixture
def order(db, demo_config):  # type: ignore[no-untyped-def]
    evidence = [
        {"kind": "snapshot", "uri": "file:///nowhere/snap.jpg", "content_type": "image/jpeg"}
    ]
    return seed_order(db, demo_config, evidence=evidence, alerts=2)


def act(client, order_id: str, action: str, role: str = "operator", **body):  # type: ignore[no-untyped-def]
    return client.post(
        f"/api/v1/work-orders/{order_id}/actions/{action}", json=body, headers=auth(role)
    )


# -- who may ---------------------------------------------------------------------------------


def test_no_token_is_401_and_says_how(client, order) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/api/v1/work-orders")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert (
        client.get("/api/v1/work-orders", headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )


def test_each_role_reads_but_only_operators_and_admins_act(client, order) -> None:  # type: ignore[no-untyped-def]
    for role in ("viewer", "operator", "admin"):
        assert client.get(f"/api/v1/work-orders/{order.id}", headers=auth(role)).status_code == 200
    refused = act(client, order.id, "dispatch", role="viewer", department="urban-mgmt")
    assert refused.status_code == 403
    assert "viewer" in refused.json()["detail"]
    assert (
        client.get(f"/api/v1/work-orders/{order.id}", headers=auth("viewer")).json()[
            "allowed_actions"
        ]
        == []
    )
    assert (
        act(client, order.id, "dispatch", role="admin", department="urban-mgmt").status_code == 200
    )


def test_me_names_the_user_and_role(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/api/v1/me", headers=auth("operator")).json() == {
        "name": "operator", "role": "operator", "display_name": "test operator"}  # fmt: skip


# -- the state machine -------------------------------------------------------------------------


def test_every_action_along_the_loop_is_recorded_with_its_user(client, order) -> None:  # type: ignore[no-untyped-def]
    oid = order.id
    steps = [
        ("dispatch", {"department": "traffic-police", "reason": "carriageway"}, "dispatched"),
        ("return", {"grounds": "on the sidewalk: urban management's"}, "returned"),
        ("dispatch", {"department": "urban-mgmt"}, "dispatched"),
        ("sign", {}, "signed"),
        ("extend", {"reason": "owner abroad", "duration": "4h"}, "extended"),
        ("start", {}, "in_progress"),
        ("resolve", {"note": "towed"}, "resolved"),
        ("verify", {"passed": False, "note": "car is back"}, "rework"),
        ("start", {}, "in_progress"),
        ("escalate", {"level": "street", "reason": "repeat offender"}, "in_progress"),
    ]
    for action, body, state in steps:
        response = act(client, oid, action, **body)
        assert response.status_code == 200, (action, response.text)
        assert response.json()["state"] == state, action
    photo = client.post(f"/api/v1/work-orders/{oid}/attachments", content=JPEG,
                        headers=auth("operator") | {"Content-Type": "image/jpeg"})  # fmt: skip
    assert photo.status_code == 201
    detail = act(client, oid, "resolve", note="towed again", photo_id=photo.json()["id"]).json()
    assert detail["state"] == "resolved" and detail["attachments"][0]["id"] == photo.json()["id"]
    assert act(client, oid, "verify", role="admin", passed=True).json()["state"] == "verified"
    assert act(client, oid, "close", note="done").json()["state"] == "closed"
    assert act(client, oid, "reopen", reason="back again").json()["state"] == "reopened"
    assert (
        act(client, oid, "mark_false_positive", reason="a permit").json()["state"]
        == "false_positive"
    )

    timeline = client.get(f"/api/v1/work-orders/{oid}", headers=auth("viewer")).json()["timeline"]
    human = [e for e in timeline if e["actor"] != "citywatch"]
    assert [e["event"] for e in human] == [
        "dispatched", "returned", "dispatched", "signed", "extended", "started", "resolved",
        "rework", "started", "escalated", "resolved", "verified", "closed", "reopened",
        "false_positive"]  # fmt: skip
    assert {e["actor"] for e in human} == {"operator", "admin"}
    assert human[1]["reason"] == "on the sidewalk: urban management's"
    assert human[10]["data"] == {"photo_id": photo.json()["id"]}
    feed_ids = [e["feed_id"] for e in timeline]
    assert feed_ids == sorted(feed_ids) and len(set(feed_ids)) == len(feed_ids)
    assert client.get(photo.json()["url"], headers=auth("viewer")).content == JPEG


def test_an_action_the_state_does_not_allow_is_409_and_says_what_is(client, order) -> None:  # type: ignore[no-untyped-def]
    response = act(client, order.id, "close")
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert detail["state"] == "filed"
    assert set(detail["allowed"]) >= {"dispatch", "mark_false_positive", "escalate"}
    assert "cannot close" in detail["message"]


@pytest.mark.parametrize(
    ("action", "body", "says"),
    [
        ("dispatch", {}, "department"),
        ("dispatch", {"department": "no-such-dept"}, "unknown department"),
        ("dispatch", {"department": "urban-mgmt", "note": "x"}, "not note"),
        ("mark_false_positive", {"reason": "   "}, "reason"),
        ("escalate", {"level": "province"}, "province"),
    ],
)
def test_bad_arguments_are_422_with_the_reason(client, order, action, body, says) -> None:  # type: ignore[no-untyped-def]
    response = act(client, order.id, action, **body)
    assert response.status_code == 422, response.text
    assert says in response.text


def test_a_stale_expected_seq_is_409_and_changes_nothing(client, order) -> None:  # type: ignore[no-untyped-def]
    seq = client.get(f"/api/v1/work-orders/{order.id}", headers=auth("viewer")).json()["seq"]
    assert (
        act(client, order.id, "dispatch", department="urban-mgmt", expected_seq=seq).status_code
        == 200
    )
    late = act(client, order.id, "mark_false_positive", reason="dup", expected_seq=seq)
    assert late.status_code == 409 and "changed" in late.json()["detail"]["message"]
    assert (
        client.get(f"/api/v1/work-orders/{order.id}", headers=auth("viewer")).json()["state"]
        == "dispatched"
    )


def test_unknown_order_is_404(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/api/v1/work-orders/wo-none", headers=auth("viewer")).status_code == 404
    assert act(client, "wo-none", "sign").status_code == 404


def test_photos_must_be_images_of_the_declared_type(client, order) -> None:  # type: ignore[no-untyped-def]
    url = f"/api/v1/work-orders/{order.id}/attachments"
    headers = auth("operator")
    assert (
        client.post(
            url, content=b"hello", headers=headers | {"Content-Type": "text/plain"}
        ).status_code
        == 415
    )
    assert (
        client.post(
            url, content=b"hello", headers=headers | {"Content-Type": "image/png"}
        ).status_code
        == 422
    )
    assert (
        client.post(
            url, content=JPEG, headers=auth("viewer") | {"Content-Type": "image/jpeg"}
        ).status_code
        == 403
    )


# -- one order in full -------------------------------------------------------------------------


def test_detail_has_alerts_evidence_devices_timeline_and_sla(client, order) -> None:  # type: ignore[no-untyped-def]
    detail = client.get(f"/api/v1/work-orders/{order.id}", headers=auth("operator")).json()
    assert detail["id"] == order.id and detail["state"] == "filed" and detail["open"] is True
    assert len(detail["alerts"]) == 2
    assert detail["devices"] == [{"kind": "camera", "id": "cam-renmin-101", "in_registry": True,
                                  "name": "人民路与建设路口 Renmin/Jianshe crossing"}]  # fmt: skip
    urls = {e["url"] for e in detail["evidence"]}
    assert urls == {f"/api/v1/alerts/{a}/evidence/snapshot" for a in order.alert_ids}
    assert [e["event"] for e in detail["timeline"]] == ["reported", "filed"]
    sla = detail["sla"]
    assert sla["tier"] == "simple" and sla["overdue"] is False and sla["remaining_s"] > 0
    assert "dispatch" in detail["allowed_actions"] and "close" not in detail["allowed_actions"]


# -- the list ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def listed(center_db, demo_config, client):  # type: ignore[no-untyped-def]
    """Twelve orders of known shape in a fresh database, for the list's filters."""
    import psycopg

    now = datetime.now(UTC)
    made = {}
    with psycopg.connect(center_db) as conn:
        conn.execute("DELETE FROM work_order_attachments; DELETE FROM workorder_events;"
                     " DELETE FROM work_order_alerts; DELETE FROM work_orders")  # fmt: skip
        conn.commit()
        for i in range(12):
            kind = ["illegal_parking", "waterlogging", "smoke"][i % 3]
            made[i] = seed_order(
                conn, demo_config, kind=kind, opened_at=now - timedelta(days=i, minutes=1),
                lat=31.40 + i * 0.01, lon=119.45 + i * 0.01, priority=1 + i % 4,
                district="d-shifan", street="s-chengxi" if i % 2 else "s-chengdong",
                community=None, order_id=f"wo-list-{i:02d}",
            )  # fmt: skip
        conn.execute(
            "UPDATE work_orders SET state = 'closed', closed_at = now() WHERE id = 'wo-list-11'"
        )
        conn.execute("UPDATE work_orders SET escalation_level = 'street' WHERE id = 'wo-list-05'")
        conn.commit()
    return made


def ids(client, **query) -> list[str]:  # type: ignore[no-untyped-def]
    response = client.get("/api/v1/work-orders", params=query, headers=auth("viewer"))
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def test_list_is_newest_first_and_filters_combine(client, listed) -> None:  # type: ignore[no-untyped-def]
    assert ids(client, limit=3) == ["wo-list-00", "wo-list-01", "wo-list-02"]
    assert ids(client, kind="smoke") == ["wo-list-02", "wo-list-05", "wo-list-08", "wo-list-11"]
    assert ids(client, kind=["smoke", "waterlogging"], open="true", street="s-chengxi") == [
        "wo-list-01", "wo-list-05", "wo-list-07"]  # fmt: skip
    assert ids(client, open="false") == ["wo-list-11"]
    assert ids(client, state="closed") == ["wo-list-11"]
    assert ids(client, priority=[1], department="drainage") == ["wo-list-04"]
    assert ids(client, escalated="true") == ["wo-list-05"]
    now = datetime.now(UTC)
    assert ids(client, since=(now - timedelta(days=2, hours=1)).isoformat(),
               until=(now - timedelta(hours=12)).isoformat()) == ["wo-list-01", "wo-list-02"]  # fmt: skip
    assert ids(client, bbox="119.465,31.415,119.485,31.435") == ["wo-list-02", "wo-list-03"]


def test_overdue_means_open_and_past_due(client, listed) -> None:  # type: ignore[no-untyped-def]
    overdue = ids(client, overdue="true", limit=500)
    assert "wo-list-11" not in overdue  # closed
    assert "wo-list-00" not in overdue  # opened a minute ago, due in a day or more
    assert "wo-list-10" in overdue  # ten days old, simple tier: 1 day
    items = client.get(
        "/api/v1/work-orders", params={"overdue": "true"}, headers=auth("viewer")
    ).json()["items"]
    assert all(item["overdue"] and item["open"] for item in items)


def test_paging_by_cursor_visits_every_order_once(client, listed) -> None:  # type: ignore[no-untyped-def]
    seen, cursor = [], None
    while True:
        params = {"limit": 5} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/v1/work-orders", params=params, headers=auth("viewer")).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"wo-list-{i:02d}" for i in range(12)]


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ({"cursor": "garbage"}, "cursor"),
        ({"bbox": "1,2,3"}, "bbox"),
        ({"priority": 9}, "priority"),
        ({"since": "2026-01-01T00:00:00"}, "since"),
    ],
)
def test_bad_list_queries_are_422(client, query, says) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/api/v1/work-orders", params=query, headers=auth("viewer"))
    assert response.status_code == 422 and says in response.text


def test_api_docs_are_served_without_any_cdn(client) -> None:  # type: ignore[no-untyped-def]
    page = client.get("/docs").text
    assert (
        "/static/vendor/swagger-ui-dist/swagger-ui-bundle.js" in page and "cdn" not in page.lower()
    )
    assert client.get("/static/vendor/swagger-ui-dist/swagger-ui-bundle.js").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/api/v1/work-orders/{order_id}/actions/{action}" in spec["paths"]
