"""Fixtures for the command center's tests: a fresh, migrated database per test module on
the session's embedded PostgreSQL, the app with three users (one per role), and the app
served by a real uvicorn on a free port for tests that need a live server (feed, browser).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from citywatch.center.auth import hash_token
from citywatch.config import CitywatchConfig
from tests.conftest import fresh_database

TOKENS = {"viewer": "viewer-token-0123456789", "operator": "operator-token-0123456789",
          "admin": "admin-token-0123456789"}  # fmt: skip
"""Bearer token of the test user of each role (user names: the role name)."""


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


@pytest.fixture(scope="module")
def center_db(stack) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The URL of a fresh database with the current schema, dropped after the module."""
    with fresh_database(stack, "center") as url:
        yield url


def center_config(demo_config: CitywatchConfig) -> CitywatchConfig:
    """The demo site with one test user per role (tokens given by hash)."""
    users = [
        {"name": role, "role": role, "display_name": f"test {role}",
         "token_sha256": hash_token(token)}
        for role, token in TOKENS.items()
    ]  # fmt: skip
    center = demo_config.center.model_dump() | {"users": users}
    return CitywatchConfig.model_validate(demo_config.model_dump() | {"center": center})


@pytest.fixture(scope="module")
def center_settings(center_db: str, demo_config: CitywatchConfig, tmp_path_factory):  # type: ignore[no-untyped-def]
    from citywatch.center.settings import CenterSettings

    evidence_root = tmp_path_factory.mktemp("evidence")
    return CenterSettings(
        config=center_config(demo_config), database_url=center_db,
        evidence_roots=(evidence_root,), config_dir=Path(__file__).resolve().parents[2] / "configs",
    )  # fmt: skip


def with_center(settings, **center: object):  # type: ignore[no-untyped-def]
    """``settings`` with some ``center`` config changed (``limits={...}`` merges into the
    limits), validated as the config loader would."""
    import dataclasses

    config = settings.config
    current = config.center.model_dump()
    if "limits" in center:
        center["limits"] = current["limits"] | dict(center["limits"])  # type: ignore[call-overload]
    changed = CitywatchConfig.model_validate(config.model_dump() | {"center": current | center})
    return dataclasses.replace(settings, config=changed)


@pytest.fixture(scope="module")
def client(center_settings):  # type: ignore[no-untyped-def]
    """A TestClient of the app (lifespan run: pool open, users synced, feed listening)."""
    from fastapi.testclient import TestClient

    from citywatch.center.app import create_app

    with TestClient(create_app(center_settings)) as test_client:
        yield test_client


@pytest.fixture
def db(center_db: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(center_db) as conn:
        yield conn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    server: object
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True  # type: ignore[attr-defined]
        self.thread.join(15)


def start_server(settings, port: int | None = None) -> LiveServer:  # type: ignore[no-untyped-def]
    """The app under a real uvicorn in a thread (for SSE and browser tests)."""
    import uvicorn

    from citywatch.center.app import create_app

    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the center did not start")
        time.sleep(0.05)
    return LiveServer(f"http://127.0.0.1:{port}", server, thread)


@pytest.fixture(scope="module")
def live_center(center_settings) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    live = start_server(center_settings)
    try:
        yield live
    finally:
        live.stop()


__all__ = ["TOKENS", "auth", "conninfo_to_dict", "with_center"]
