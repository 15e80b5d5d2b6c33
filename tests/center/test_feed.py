"""The live feed survives the API dying: a client that reconnects with Last-Event-ID gets
every event it missed, once and in order (the API runs as its own process, killed with
SIGKILL mid-stream and started again)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.center.conftest import free_port
from tests.center.seed import seed_order
from tests.conftest import CliProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class FeedClient(threading.Thread):
    """An SSE client that reconnects with Last-Event-ID, as a browser's EventSource does."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(daemon=True)
        self.url, self.token = url, token
        self.received: list[tuple[int, dict]] = []
        self.connects = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        last = "0"
        while not self.stopping.is_set():
            headers = {"Authorization": f"Bearer {self.token}", "Last-Event-ID": last}
            try:
                with httpx.stream("GET", f"{self.url}/api/v1/feed", headers=headers,
                                  timeout=httpx.Timeout(5, read=20)) as response:  # fmt: skip
                    response.raise_for_status()
                    self.connects += 1
                    event_id, data = None, None
                    for line in response.iter_lines():
                        if line.startswith("id:"):
                            event_id = line[3:].strip()
                        elif line.startswith("data:"):
                            data = line[5:].strip()
                        elif line == "" and event_id is not None and data is not None:
                            self.received.append((int(event_id), json.loads(data)))
                            last, event_id, data = event_id, None, None
                        if self.stopping.is_set():
                            return
            except (httpx.HTTPError, httpx.StreamError):
                time.sleep(0.2)


def start_center(data_dir: Path, port: int, database_url: str, log: Path) -> CliProcess:
    process = CliProcess(
        ["center", "serve", "--port", str(port), "--database-url", database_url,
         "--log-level", "WARNING"], data_dir, log,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.process.poll() is not None:
            pytest.fail(f"center exited:\n{process.output()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"center did not come up:\n{process.output()}")


def test_a_reconnecting_client_misses_nothing_across_a_killed_api(
    stack, center_db, demo_config, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    with psycopg.connect(center_db) as conn:
        order = seed_order(conn, demo_config)
    token = (stack.data_dir / "secrets" / "center-viewer").read_text().strip()
    port = free_port()
    center = start_center(stack.data_dir, port, center_db, tmp_path / "center-1.log")
    client = FeedClient(f"http://127.0.0.1:{port}", token)
    client.start()
    seq = order.seq
    try:
        with psycopg.connect(center_db, autocommit=True) as conn:
            for n in range(60):
                if n == 20:  # mid-stream: the API dies without a goodbye
                    center.process.kill()
                    center.process.wait()
                if n == 35:
                    center = start_center(
                        stack.data_dir, port, center_db, tmp_path / "center-2.log"
                    )
                seq += 1
                conn.execute(
                    """INSERT INTO workorder_events (id, work_order_id, seq, event, from_state,
                           to_state, actor, time, data)
                       VALUES (%s, %s, %s, 'noted', 'filed', 'filed', 'test', now(), %s)""",
                    (f"{order.id}.{seq}", order.id, seq, json.dumps({"n": n})),
                )
                time.sleep(0.05)
            expected = [row[0] for row in conn.execute(
                "SELECT feed_id FROM workorder_events ORDER BY feed_id")]  # fmt: skip
        deadline = time.monotonic() + 30
        while len(client.received) < len(expected) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        client.stopping.set()
        center.stop()
    got = [feed_id for feed_id, _ in client.received]
    assert got == expected, (
        f"missing {sorted(set(expected) - set(got))}, extra {len(got) - len(set(got))}"
    )
    assert client.connects >= 2, "the client never had to reconnect: the kill did not cut it off"
    notes = [body["data"]["n"] for _, body in client.received if body["event"] == "noted"]
    assert notes == list(range(60))
    assert client.received[0][1]["work_order"]["id"] == order.id


def test_feed_needs_a_token_and_a_numeric_position(live_center) -> None:  # type: ignore[no-untyped-def]
    from tests.center.conftest import auth

    assert httpx.get(f"{live_center.url}/api/v1/feed", timeout=5).status_code == 401
    bad = httpx.get(
        f"{live_center.url}/api/v1/feed", headers=auth("viewer") | {"Last-Event-ID": "x"}, timeout=5
    )
    assert bad.status_code == 422
