"""Work orders: list, detail, actions, attachments (being written)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1", tags=["work orders"])
