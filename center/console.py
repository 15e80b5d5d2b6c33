"""The web console: ``/`` serves center/static/index.html and ``/static/...`` its scripts,
styles and the vendored libraries (scripts/vendor_console.sh fetches Leaflet and uPlot
from npm; the operations machines reach no CDN).

Plain files and ES modules, no build step. Served from a router (not a mounted
StaticFiles app) so that ``create_app`` only includes it; paths are resolved and must stay
inside the static folder. The files need no token: the console asks for one and sends it
with every API call.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from citywatch.center.settings import STATIC_DIR

router = APIRouter(include_in_schema=False)

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
}
"""Types by suffix, not from the host's mime.types: a module script served as anything but
JavaScript is refused by the browser."""

NO_CACHE = {"Cache-Control": "no-cache"}
"""Revalidate every time (ETag / Last-Modified make that cheap): an upgraded center must
not run yesterday's console."""


def static_file(relative: str, root: Path = STATIC_DIR) -> Path:
    """The file under ``root`` that ``relative`` names; 404 for anything outside it, hidden
    or missing (``..``, absolute paths and symlinks out of the folder included)."""
    base = root.resolve()
    try:
        path = (base / relative).resolve(strict=True)
    except (OSError, RuntimeError):
        raise HTTPException(404, "no such file") from None
    if not path.is_relative_to(base) or not path.is_file():
        raise HTTPException(404, "no such file")
    if any(part.startswith(".") for part in path.relative_to(base).parts):
        raise HTTPException(404, "no such file")
    return path


@router.get("/")
async def index() -> FileResponse:
    """The console's single page."""
    return FileResponse(
        STATIC_DIR / "index.html", media_type=CONTENT_TYPES[".html"], headers=NO_CACHE
    )


@router.get("/static/{relative:path}")
async def asset(relative: str) -> FileResponse:
    """One of the console's assets (app modules, styles, vendored libraries)."""
    path = static_file(relative)
    media_type = CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")
    return FileResponse(path, media_type=media_type, headers=NO_CACHE)
