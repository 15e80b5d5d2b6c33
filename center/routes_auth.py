"""Who am I, and signed URLs for what a browser opens without headers (the live feed in an
``EventSource``, evidence in ``<img>``/``<video>``)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field

from citywatch.center.auth import User
from citywatch.center.deps import State, Viewer
from citywatch.center.signed_urls import BadSignature

router = APIRouter(prefix="/api/v1", tags=["auth"])


@router.get("/me")
async def me(user: Viewer) -> User:
    """Who the token belongs to, and their role."""
    return user


class SignRequest(BaseModel):
    path: str = Field(
        min_length=1, max_length=1000, pattern=r"^/[^?#\x00]*$",
        description="an API path without query: /api/v1/feed, or an evidence or attachment url",
    )  # fmt: skip


class SignedUrl(BaseModel):
    url: str = Field(description="the path with its signature; add your own query after it")
    expires_at: datetime = Field(description="the URL opens until then (an open feed stays)")


@router.post("/signed-urls")
async def sign(body: SignRequest, state: State, user: Viewer) -> SignedUrl:
    """A short-lived URL that opens `path` for you with GET and no header. Only the live feed,
    evidence and attachments can be signed; the URL carries no token."""
    try:
        url, expires = state.auth.signer.sign(body.path, user, time.time())
    except BadSignature as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return SignedUrl(url=url, expires_at=datetime.fromtimestamp(expires, UTC))
