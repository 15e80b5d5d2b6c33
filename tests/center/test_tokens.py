"""Tokens issued by the admin command work at once, are stored only as hashes, and stop
working when revoked; users from config are synced at start."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from citywatch.center.auth import hash_token
from tests.conftest import DEMO_CONFIG, REPO

pytestmark = pytest.mark.integration


def cli(stack, *args: str) -> str:  # type: ignore[no-untyped-def]
    result = subprocess.run(
        [sys.executable, "-m", "citywatch.cli.main", "center", *args],
        capture_output=True, text=True, cwd=REPO, timeout=120,
        env={"CITYWATCH_DATA_DIR": str(stack.data_dir), "CITYWATCH_CONFIG": str(DEMO_CONFIG),
             "PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


def test_issued_token_works_is_stored_hashed_and_can_be_revoked(stack, demo_config) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from citywatch.center.app import create_app
    from citywatch.center.settings import CenterSettings

    token = (
        cli(stack, "token", "add", "night-shift", "--role", "viewer", "--label", "tablet")
        .strip()
        .splitlines()[-1]
    )
    with psycopg.connect(stack.endpoints.database_url) as conn:
        stored = [r[0] for r in conn.execute(
            "SELECT token_sha256 FROM center_tokens WHERE user_name = 'night-shift'")]  # fmt: skip
    assert stored == [hash_token(token)] and token not in stored
    settings = CenterSettings(config=demo_config, database_url=stack.endpoints.database_url,
                              secrets_dir=stack.endpoints.secrets_dir)  # fmt: skip
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/v1/me", headers=headers).json()["role"] == "viewer"
        assert client.post("/api/v1/work-orders/x/actions/sign", headers=headers).status_code == 403
    assert "night-shift" in cli(stack, "users")
    assert "revoked 1 token" in cli(stack, "token", "revoke", "night-shift")
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/v1/me", headers=headers).status_code == 401
        # the demo config's users came in at start, by the secrets the stack generated
        officer = (stack.data_dir / "secrets" / "center-operator").read_text().strip()
        me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {officer}"}).json()
        assert me == {
            "name": "duty-officer",
            "role": "operator",
            "display_name": "值班员 duty officer",
        }


def test_a_role_that_does_not_exist_is_refused_by_the_command(stack) -> None:  # type: ignore[no-untyped-def]
    result = subprocess.run(
        [sys.executable, "-m", "citywatch.cli.main", "center", "token", "add", "x", "--role", "boss"],
        capture_output=True, text=True, cwd=REPO, timeout=60,
        env={"CITYWATCH_DATA_DIR": str(stack.data_dir), "CITYWATCH_CONFIG": str(DEMO_CONFIG), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode != 0 and "viewer, operator, admin" in result.stdout + result.stderr


def test_admins_manage_tokens_over_the_api_and_nobody_else_does(client) -> None:  # type: ignore[no-untyped-def]
    from tests.center.conftest import auth

    assert client.get("/api/v1/admin/users", headers=auth("operator")).status_code == 403
    issued = client.post("/api/v1/admin/users/hotline-12345/tokens", json={"role": "viewer", "label": "integration"},
                         headers=auth("admin"))  # fmt: skip
    assert issued.status_code == 201
    token = issued.json()["token"]
    assert (
        client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()["name"]
        == "hotline-12345"
    )
    listed = {u["name"]: u for u in client.get("/api/v1/admin/users", headers=auth("admin")).json()}
    assert listed["hotline-12345"]["live_tokens"] == 1 and listed["admin"]["source"] == "config"
    refused = client.post("/api/v1/admin/users/operator/tokens", json={}, headers=auth("admin"))
    assert refused.status_code == 409 and "config" in refused.text
    assert client.delete(
        "/api/v1/admin/users/hotline-12345/tokens", headers=auth("admin")
    ).json() == {"revoked": 1}
