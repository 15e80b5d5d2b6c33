"""``GET /api/v1/feed``: work-order events as server-sent events (see :mod:`.feed`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, status
from sse_starlette import EventSourceResponse

from citywatch.center.deps import State, Viewer
from citywatch.center.feed import latest_position, resync_frame, stream

router = APIRouter(prefix="/api/v1", tags=["feed"])
MAX_POSITION = 2**63 - 1
"""Feed positions are PostgreSQL bigints."""


def _position(value: str | None, what: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        position = int(value)
    except ValueError:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"{what} must be a feed position (an integer)"
        ) from None
    if not 0 <= position <= MAX_POSITION:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"{what} must be between 0 and {MAX_POSITION}"
        )
    return position


@router.get("/feed", response_class=EventSourceResponse)
async def feed(
    state: State,
    user: Viewer,
    last_event_id: Annotated[str | None, Header(description="resume after this event")] = None,
    after: Annotated[
        str | None, Query(description="resume after this feed position (0: from the start)")
    ] = None,
) -> EventSourceResponse:
    """Work-order events as they happen (`event: workorder`, `id:` the feed position).

    Reconnect with `Last-Event-ID` (browsers do it by themselves) to receive every event
    after it exactly once; without it the feed starts now. A position past the feed's head
    (from before a database restore) gets `event: resync` with the head: reload, then
    follow on. A browser opens it by a signed URL (`POST /api/v1/signed-urls`).
    """
    start = _position(last_event_id, "Last-Event-ID")
    if start is None:
        start = _position(after, "after")
    limit = state.settings.config.center.limits.feed_clients
    if len(state.feed.subscribers) >= limit:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"the live feed has its {limit} clients; retry shortly",
            headers={"Retry-After": "5"},
        )
    first = b""
    if start is not None and start > state.feed.position:
        head = await latest_position(state.pool)
        if start > head:
            first, start = resync_frame(head, start), head

    async def events() -> AsyncIterator[bytes]:
        if first:
            yield first
        async for chunk in stream(state.feed, start):
            yield b"".join(event.frame for event in chunk)  # frames encoded once per event

    return EventSourceResponse(
        events(), ping=state.settings.config.center.feed_keepalive_s, send_timeout=30
    )
