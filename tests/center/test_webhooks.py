"""Outgoing webhooks against a real local HTTP server: a new P1 order is posted as plain
JSON, as a WeCom robot message, and as a DingTalk one signed with its secret; a P3 order
goes only to the target that asked for it; a receiver failing once gets the notice on the
retry."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.center.conftest import with_center
from tests.center.seed import seed_order

pytestmark = [pytest.mark.integration, pytest.mark.service]

SECRET = "SEC-dingtalk-robot-secret"


@dataclasses.dataclass
class Post:
    path: str
    query: dict[str, list[str]]
    body: dict


class Receiver:
    """A local HTTP server that records every POST; /flaky answers 500 to its first one."""

    def __init__(self) -> None:
        self.posts: list[Post] = []
        self.flaky_failures = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                parts = urlsplit(self.path)
                data = self.rfile.read(int(self.headers["Content-Length"]))
                if parts.path == "/flaky" and receiver.flaky_failures == 0:
                    receiver.flaky_failures += 1
                    self.send_response(500)
                    self.end_headers()
                    return
                receiver.posts.append(Post(parts.path, parse_qs(parts.query), json.loads(data)))
                answer = b'{"errcode":0,"errmsg":"ok"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def to(self, path: str) -> list[Post]:
        return [p for p in self.posts if p.path == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.server.shutdown()


def test_new_orders_are_posted_per_target_format_priority_and_retry(
    center_settings, db, receiver: Receiver, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """P1 → json, wecom, signed dingtalk and (after one 500) flaky; P3 → only the P3 target."""
    from fastapi.testclient import TestClient

    from citywatch.center.app import create_app

    (tmp_path / "dingtalk").write_text(SECRET)
    settings = with_center(center_settings, webhooks=[
        {"url": f"{receiver.url}/json", "format": "json"},
        {"url": f"{receiver.url}/wecom?key=k1", "format": "wecom"},
        {"url": f"{receiver.url}/dingtalk?access_token=t1", "format": "dingtalk",
         "secret": "secret:dingtalk"},
        {"url": f"{receiver.url}/flaky", "retry_s": 0.1},
        {"url": f"{receiver.url}/p3", "min_priority": 3},
    ])  # fmt: skip
    settings = dataclasses.replace(settings, secrets_dir=tmp_path)
    with TestClient(create_app(settings)):
        started = time.time()
        urgent = seed_order(db, settings.config, kind="smoke", priority=1)
        routine = seed_order(db, settings.config, kind="illegal_parking", priority=3)
        deadline = time.monotonic() + 15
        while len(receiver.posts) < 6:
            assert time.monotonic() < deadline, f"only {receiver.posts} arrived"
            time.sleep(0.05)
        time.sleep(0.5)  # nothing more comes
    assert [p.body["work_order"]["id"] for p in receiver.to("/json")] == [urgent.id]
    sent = receiver.to("/json")[0].body
    assert sent["event"] == "workorder.opened" and sent["work_order"]["priority"] == 1
    [wecom] = receiver.to("/wecom")
    number = sent["work_order"]["number"]  # the short number duty officers read (DEMO-…)
    assert number and number.startswith(settings.config.site.id.upper())
    assert wecom.body["msgtype"] == "markdown" and number in wecom.body["markdown"]["content"]
    [ding] = receiver.to("/dingtalk")
    assert ding.body["markdown"]["title"].startswith("P1") and ding.query["access_token"] == ["t1"]
    stamp = ding.query["timestamp"][0]
    expected = base64.b64encode(
        hmac.new(SECRET.encode(), f"{stamp}\n{SECRET}".encode(), hashlib.sha256).digest()
    ).decode()
    assert ding.query["sign"] == [expected] and abs(int(stamp) / 1000 - started) < 30
    assert receiver.flaky_failures == 1 and len(receiver.to("/flaky")) == 1
    assert {p.body["work_order"]["id"] for p in receiver.to("/p3")} == {urgent.id, routine.id}
    assert len(receiver.posts) == 6


def test_two_center_processes_send_each_notice_once(
    center_settings, db, receiver: Receiver
) -> None:  # type: ignore[no-untyped-def]
    """Behind a load balancer both replicas read the feed; the claim in the database lets
    exactly one of them post each new order, whichever sees it first."""
    from fastapi.testclient import TestClient

    from citywatch.center.app import create_app

    settings = with_center(center_settings, webhooks=[{"url": f"{receiver.url}/duty"}])
    with TestClient(create_app(settings)), TestClient(create_app(settings)):
        orders = [seed_order(db, settings.config, kind="smoke", priority=1) for _ in range(5)]
        deadline = time.monotonic() + 15
        while len(receiver.posts) < len(orders):
            assert time.monotonic() < deadline, f"only {receiver.posts} arrived"
            time.sleep(0.05)
        time.sleep(1.0)  # a second sender would have posted by now
    posted = [p.body["work_order"]["id"] for p in receiver.to("/duty")]
    assert sorted(posted) == sorted(o.id for o in orders)
