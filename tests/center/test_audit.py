"""The audit trail: tokens issued and revoked, users created or changed (by an admin, the
command line or config), work-order actions and photos, each with its actor and source
address, listed for admins only; failed logins logged without the token."""

from __future__ import annotations

import logging

import psycopg
import pytest

from citywatch.center.auth import add_token
from tests.center.conftest import auth
from tests.center.seed import seed_order

pytestmark = pytest.mark.integration

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64
SOURCE = "testclient"
"""The client address Starlette's TestClient reports."""


def trail(client, **params: object) -> list[dict]:  # type: ignore[no-untyped-def]
    response = client.get("/api/v1/admin/audit", params=params, headers=auth("admin"))
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def test_config_users_are_audited_when_they_first_come_in(client) -> None:  # type: ignore[no-untyped-def]
    """Start-up's sync of center.users records each new user, by 'config'."""
    created = {row["target"]: row for row in trail(client, actor="config", action="user.created")}
    assert set(created) >= {"viewer", "operator", "admin"}
    assert created["operator"]["detail"]["role"] == "operator"


def test_issuing_and_revoking_tokens_is_audited_with_the_admin_and_address(client) -> None:  # type: ignore[no-untyped-def]
    """The admin API records who issued and revoked, from where, and never the token."""
    issued = client.post("/api/v1/admin/users/wall-display/tokens", json={"role": "viewer", "label": "lobby"},
                         headers=auth("admin")).json()  # fmt: skip
    client.delete("/api/v1/admin/users/wall-display/tokens", headers=auth("admin"))
    rows = [r for r in trail(client) if r["target"] == "wall-display"]
    assert [r["action"] for r in rows] == ["tokens.revoked", "token.issued", "user.created"]
    assert {(r["actor"], r["source"]) for r in rows} == {("admin", SOURCE)}
    assert rows[0]["detail"] == {"count": 1}
    assert rows[1]["detail"] == {"role": "viewer", "label": "lobby"}
    assert issued["token"] not in str(rows)


def test_a_role_change_by_the_command_line_is_audited(client, center_db) -> None:  # type: ignore[no-untyped-def]
    """``citywatch center token add`` (add_token's default actor) records the change of role."""
    import asyncio

    async def issue(role: str) -> None:
        async with await psycopg.AsyncConnection.connect(center_db, autocommit=True) as conn:
            await add_token(conn, "night-shift", role)  # type: ignore[arg-type]

    asyncio.run(issue("viewer"))
    asyncio.run(issue("operator"))
    changed = trail(client, action="user.changed")
    assert changed[0]["target"] == "night-shift" and changed[0]["actor"] == "command line"
    assert changed[0]["detail"] == {"role": "operator", "previous_role": "viewer"}


def test_work_order_actions_and_photos_are_audited(client, db, demo_config) -> None:  # type: ignore[no-untyped-def]
    """Each action is recorded with its arguments, the operator and the address."""
    order = seed_order(db, demo_config)
    dispatched = client.post(f"/api/v1/work-orders/{order.id}/actions/dispatch",
                             json={"department": "urban-mgmt", "reason": "vendor"},
                             headers=auth("operator"))  # fmt: skip
    assert dispatched.status_code == 200
    photo = client.post(f"/api/v1/work-orders/{order.id}/attachments", content=JPEG,
                        headers=auth("operator") | {"Content-Type": "image/jpeg"})  # fmt: skip
    refused = client.post(f"/api/v1/work-orders/{order.id}/actions/close", headers=auth("operator"))
    assert refused.status_code == 409
    rows = [r for r in trail(client) if r["target"] == order.id]
    assert [r["action"] for r in rows] == ["attachment.uploaded", "workorder.dispatch"]
    assert rows[1]["detail"] == {"department": "urban-mgmt", "reason": "vendor"}
    assert rows[0]["detail"]["attachment"] == photo.json()["id"]
    assert {(r["actor"], r["source"]) for r in rows} == {("operator", SOURCE)}


def test_the_trail_is_for_admins_and_pages_newest_first(client) -> None:  # type: ignore[no-untyped-def]
    """Operators get 403; admins page with next_before through every row once."""
    assert client.get("/api/v1/admin/audit", headers=auth("operator")).status_code == 403
    everything = [r["id"] for r in trail(client, limit=500)]
    paged, before = [], None
    while True:
        params = {"limit": 2} | ({"before": before} if before else {})
        page = client.get("/api/v1/admin/audit", params=params, headers=auth("admin")).json()
        paged += [r["id"] for r in page["items"]]
        before = page["next_before"]
        if before is None:
            break
    assert paged == everything == sorted(everything, reverse=True)


def test_a_failed_login_is_logged_with_address_and_reason_but_not_the_token(client, caplog) -> None:  # type: ignore[no-untyped-def]
    """The log names who tried and why; the token itself appears nowhere."""
    junk = "junk-token-that-must-not-be-logged-0123"
    with caplog.at_level(logging.WARNING, logger="citywatch.center.gate"):
        assert (
            client.get("/api/v1/me", headers={"Authorization": f"Bearer {junk}"}).status_code == 401
        )
    messages = [r.getMessage() for r in caplog.records if r.name == "citywatch.center.gate"]
    assert any("authentication failed from testclient" in m and "unknown or revoked" in m
               for m in messages), messages  # fmt: skip
    assert junk not in caplog.text
