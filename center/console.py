"""The web console's static files (to be filled in)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
