"""``GET /api/v1/feed``: work-order events as server-sent events (see :mod:`.feed`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, status
from sse_starlette import EventSourceResponse

from citywatch.center.deps import State, Viewer
from citywatch.center.feed import stream

router = APIRouter(prefix="/api/v1", tags=["feed"])


def _position(value: str | None, what: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        position = int(value)
    except ValueError:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"{what} must be a feed position (an integer)"
        ) from None
    if position < 0:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{what} must be ≥ 0")
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
    after it exactly once; without it the feed starts now.
    """
    start = _position(last_event_id, "Last-Event-ID")
    if start is None:
        start = _position(after, "after")

    async def events() -> AsyncIterator[bytes]:
        async for chunk in stream(state.feed, start):
            yield b"".join(event.frame for event in chunk)  # frames encoded once per event

    return EventSourceResponse(
        events(), ping=state.settings.config.center.feed_keepalive_s, send_timeout=30
    )
