"""The truth file of a camera from the duty officers' verdicts, for ``edge replay --truth``
(``GET /api/v1/cameras/{camera_id}/truth``; the CLI's ``center export-truth`` writes the
same file)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status
from fastapi.responses import PlainTextResponse

from citywatch.center.deps import Db, State, Viewer
from citywatch.center.params import checked_time
from citywatch.center.truth_export import export_truth

router = APIRouter(prefix="/api/v1", tags=["insight"])
DEFAULT_DAYS = 30


def aware(value: datetime | None, tz: tzinfo, what: str) -> datetime | None:
    """A query time with its zone; a bare one is the site's local time."""
    value = checked_time(value, what)
    return value if value is None or value.tzinfo else value.replace(tzinfo=tz)


@router.get(
    "/cameras/{camera_id}/truth",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}, "description": "JSON lines and # notes"}},
)
async def camera_truth(
    camera_id: Annotated[str, Path(min_length=1, max_length=200)],
    db: Db,
    state: State,
    user: Viewer,
    since: Annotated[
        datetime | None, Query(description="orders opened from (default: 30 days ago)")
    ] = None,
    until: Annotated[datetime | None, Query(description="up to, exclusive (default: now)")] = None,
) -> PlainTextResponse:
    """Confirmed and false-positive orders of one camera as a truth file (a download)."""
    if camera_id not in {camera.id for camera in state.settings.config.devices.cameras}:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera {camera_id!r} in the registry")
    tz = state.settings.tz
    until = aware(until, tz, "until") or datetime.now(UTC)
    since = aware(since, tz, "since") or until - timedelta(days=DEFAULT_DAYS)
    if since >= until:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"since ({since.isoformat()}) must be before until ({until.isoformat()})",
        )
    export = await export_truth(db, camera_id, since=since, until=until)
    return PlainTextResponse(
        export.text,
        headers={
            "Content-Disposition": f'attachment; filename="{camera_id}.truth.jsonl"',
            "X-Truth-Events": str(export.events),
            "X-Truth-False-Positives": str(export.false_positive_orders),
        },
    )
