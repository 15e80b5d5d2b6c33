"""No input reaches a 500: every API route, its path, query, header and body parameters, with
hostile values (NUL, huge and negative numbers, NaN, times off the calendar, forged cursors,
invalid UTF-8, very long strings); and the named cases: a NUL in a filter is 422, a
``Last-Event-ID`` beyond any position is 422, one past the head is a resync event."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import pytest
from fastapi.routing import APIRoute

from tests.center.conftest import auth

pytestmark = pytest.mark.integration

HOSTILE = [
    "\x00", "a\x00b", "", " ", "-1", "0", "1e309", "nan", "-inf", "9" * 25, "x" * 5000,
    "../../etc/passwd", "%", "'; DROP TABLE work_orders; --", "🚒", "true", "[]", "{}",
    "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-01", "2024-13-45",
    "1,2,3,4", "-181,-91,181,91", "nan,nan,nan,nan", "1,2,1,2,3",
]  # fmt: skip
"""Values every parameter gets in turn."""
RAW_QUERIES = [b"limit=%FF%FE", b"state=%ED%A0%80", b"district=%00", b"cursor=%C0%AF"]
"""Query strings that are not valid UTF-8 or hide a NUL, sent as bytes."""
PLAUSIBLE = {"action": "sign", "kind": "snapshot", "name": "sweep-user"}
"""A valid value for the other path parameters while one is hostile."""
LAST_EVENT_IDS = ["x", "-1", "1e23", str(10**23), str(2**63), "9" * 5000, "0x10", " 5 "]


def forged_cursor(payload: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


CURSORS = [
    forged_cursor(["2024-01-01T00:00:00", "naive"]),
    forged_cursor(["2024-01-01T00:00:00+00:00", "nul\x00id"]),
    forged_cursor(["0001-01-01T00:00:00+14:00", "x"]),
    forged_cursor([1, 2]),
    forged_cursor({"a": 1}),
    "!!!",
]


def api_routes(app: Any) -> Iterator[tuple[str, str, APIRoute]]:
    """Every API route of the app, the included routers' too."""
    todo = list(app.routes)
    while todo:
        route = todo.pop(0)
        included = getattr(route, "original_router", None)  # FastAPI's included router
        if included is not None:
            todo += included.routes
        elif isinstance(route, APIRoute) and route.path.startswith("/api/"):
            for method in sorted(route.methods):
                yield method, route.path, route


def query_names(route: APIRoute) -> list[str]:
    names, todo = [], [route.dependant]
    while todo:
        dependant = todo.pop()
        names += [param.alias for param in dependant.query_params]
        todo += dependant.dependencies
    return sorted(set(names))


def body_fields(route: APIRoute) -> list[str]:
    body = route.body_field
    model = getattr(body.field_info, "annotation", None) if body else None
    fields = getattr(model, "model_fields", None)
    if fields is None:  # an optional body: the model is inside the Optional
        for arg in getattr(model, "__args__", ()):
            fields = getattr(arg, "model_fields", None) or fields
    return sorted(fields or {})


def requests_for(method: str, path: str, route: APIRoute) -> Iterator[dict[str, Any]]:
    """Every hostile request for one route: each path parameter, query parameter and body
    field in turn, and a few whole bodies."""
    params = re.findall(r"{(\w+)}", path)

    def fill(hostile: str | None = None, which: str | None = None) -> str:
        url = path
        for name in params:
            value = (
                hostile
                if name == which and hostile is not None
                else PLAUSIBLE.get(name, "wo-sweep")
            )
            url = url.replace(f"{{{name}}}", quote(value, safe=""))
        return url

    for name in params:
        for value in HOSTILE:
            yield {"method": method, "url": fill(value, name)}
    for name in query_names(route):
        for value in [*HOSTILE, *CURSORS]:
            yield {"method": method, "url": fill(), "params": {name: value}}
    for raw in RAW_QUERIES:
        yield {"method": method, "url": fill().encode() + b"?" + raw}
    if method == "POST":
        for field in body_fields(route):
            for value in [*HOSTILE, 10**30, -(10**30), None, [], {}]:
                yield {"method": method, "url": fill(), "json": {field: value}}
        for content in (b"\x00", b"{", b"[]", b'{"reason": "\\u0000"}', b"x" * 100_000):
            yield {"method": method, "url": fill(), "content": content,
                   "headers": {"Content-Type": "application/json"}}  # fmt: skip
        yield {"method": method, "url": fill(), "content": b"\xff\xd8\xff",
               "headers": {"Content-Type": "image/jpeg; \x7f"}}  # fmt: skip


def status_of(client: Any, request: dict[str, Any]) -> int:
    headers = auth("admin") | request.pop("headers", {})
    url = request.pop("url")
    if isinstance(url, bytes):
        path, _, query = url.partition(b"?")
        url = httpx.URL(path.decode(), query=query)
    with client.stream(request.pop("method"), url, headers=headers, **request) as response:
        return int(response.status_code)


@pytest.fixture(scope="module")
def sweeping_client(center_settings) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """The app with server errors answered (500) instead of raised into the test."""
    from fastapi.testclient import TestClient

    from citywatch.center.app import create_app

    with TestClient(create_app(center_settings), raise_server_exceptions=False) as client:
        yield client


def route_ids() -> list[tuple[str, str]]:
    from citywatch.center.app import create_app
    from citywatch.config.center import CenterConfig

    class Config:  # create_app needs only the center section before start-up
        center = CenterConfig()

    class Settings:
        config = Config()

    app = create_app(Settings())  # type: ignore[arg-type]
    return [(method, path) for method, path, _ in api_routes(app)]


@pytest.mark.parametrize(("method", "path"), route_ids(), ids=lambda v: str(v))
def test_no_hostile_input_reaches_a_500(sweeping_client, method: str, path: str) -> None:  # type: ignore[no-untyped-def]
    """Every hostile value in every parameter of this route is answered below 500."""
    route = next(r for m, p, r in api_routes(sweeping_client.app) if (m, p) == (method, path))
    failures = []
    for request in requests_for(method, path, route):
        shown = {k: (v[:60] if isinstance(v, str | bytes) else v) for k, v in request.items()}
        status = status_of(sweeping_client, request)
        if status >= 500:
            failures.append((status, shown))
    assert not failures, failures[:10]


def test_a_nul_in_a_filter_value_is_422(client) -> None:  # type: ignore[no-untyped-def]
    """A NUL in district= used to surface from PostgreSQL as a 500."""
    response = client.get(
        "/api/v1/work-orders", params={"district": "d-\x00"}, headers=auth("viewer")
    )
    assert response.status_code == 422 and "NUL" in response.text


@pytest.mark.parametrize("last_event_id", LAST_EVENT_IDS)
def test_a_malformed_or_impossible_last_event_id_is_422(client, last_event_id: str) -> None:  # type: ignore[no-untyped-def]
    """Anything that is not a bigint feed position ≥ 0 (10^23 included) is 422, not silence."""
    with client.stream(
        "GET", "/api/v1/feed", headers=auth("viewer") | {"Last-Event-ID": last_event_id}
    ) as r:
        status = r.status_code
    assert status == 422 if last_event_id.strip() != "5" else status == 200


def test_a_last_event_id_past_the_head_gets_a_resync_event(live_center, center_db) -> None:  # type: ignore[no-untyped-def]
    """A position from before a database restore: `event: resync` naming the head, as the
    first event, and its id is the head (the browser resumes from there)."""
    with psycopg.connect(center_db) as conn:
        row = conn.execute("SELECT COALESCE(max(feed_id), 0) FROM workorder_events").fetchone()
    head = int(row[0]) if row else 0
    with httpx.stream(
        "GET", f"{live_center.url}/api/v1/feed", timeout=10,
        headers=auth("viewer") | {"Last-Event-ID": str(head + 1000)},
    ) as response:  # fmt: skip
        assert response.status_code == 200
        lines = []
        for line in response.iter_lines():
            lines.append(line)
            if line.startswith("data:"):
                break
    assert f"id: {head}" in lines and "event: resync" in lines
    assert json.loads(lines[-1][5:]) == {"head": head, "asked": head + 1000}
