"""Insight for the console and reports: alert evidence, devices and water depth, KPIs and
the site map. Read-only; every endpoint needs a viewer's token (evidence may be opened by a
signed URL, since ``<img>`` and ``<video>`` cannot set headers).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from citywatch.center import devices, evidence_files, evidence_upload, kpis, site_map
from citywatch.center.deps import Db, State, Viewer
from citywatch.center.params import checked_time
from citywatch.center.workorder_queries import csv_text
from citywatch.contracts.messages import EvidenceKind

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", tags=["insight"])

AlertId = Annotated[str, Path(min_length=1, max_length=300)]
DeviceId = Annotated[str, Path(min_length=1, max_length=200)]
DEFAULT_DEPTH_WINDOW = timedelta(hours=6)
DEFAULT_KPI_DAYS = 7
SinceQuery = Annotated[
    datetime | None, Query(description="start (ISO 8601; without a zone: site local time)")
]
UntilQuery = Annotated[
    datetime | None, Query(description="end, exclusive (default: now)")
]  # fmt: skip


def _aware(value: datetime | None, tz: tzinfo, what: str) -> datetime | None:
    """A query time with its zone; a bare one is the site's local time (what people type)."""
    value = checked_time(value, what)
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=tz)


def _check_range(since: datetime, until: datetime) -> None:
    if since >= until:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"since ({since.isoformat()}) must be before until ({until.isoformat()})",
        )


@router.get(
    "/alerts/{alert_id}/evidence/{kind}",
    response_class=Response,
    responses={
        200: {"description": "the file (image, video, …)"},
        403: {"description": "the reference points outside the evidence roots"},
        404: {
            "description": "no such alert or evidence kind, the file is gone, or the evidence"
            " is at another server's address (never redirected to)"
        },
        409: {"description": "the file does not match its announced SHA-256"},
    },
)
async def evidence(
    alert_id: AlertId, kind: EvidenceKind, db: Db, state: State, user: Viewer
) -> Response:
    """One piece of an alert's evidence (a snapshot has the detection boxes drawn)."""
    try:
        ref = await evidence_files.find(db, alert_id, kind.value)
        where = evidence_upload.locate(ref, state.settings)  # uploaded copy, else the roots
        await run_in_threadpool(evidence_files.check_sha256, where.path, ref.sha256)
    except evidence_files.EvidenceUnavailable as error:
        if isinstance(
            error,
            evidence_files.EvidenceRefused
            | evidence_files.EvidenceCorrupt
            | evidence_files.EvidenceRemote,
        ):
            log.warning("evidence %s of alert %s refused: %s", kind.value, alert_id, error)
        raise HTTPException(error.status_code, str(error)) from None
    return FileResponse(
        where.path,
        media_type=evidence_files.content_type(ref.content_type, where.path),
        filename=where.path.name,
        content_disposition_type="inline",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=3600"},
    )


@router.get("/devices")
async def list_devices(db: Db, state: State, user: Viewer) -> list[devices.DeviceView]:
    """Every camera, sensor and dock: where it is, online or offline, latest telemetry."""
    return await devices.list_devices(db, state.settings.config)


@router.get("/devices/{device_id}/depth")
async def depth(
    device_id: DeviceId,
    db: Db,
    state: State,
    user: Viewer,
    since: SinceQuery = None,
    until: UntilQuery = None,
    max_points: Annotated[
        int, Query(ge=10, le=10_000, description="at most this many points")
    ] = devices.MAX_DEPTH_POINTS,
) -> devices.DepthSeries:
    """A waterlogging sensor's depth curve (default: the last 6 hours) and its levels."""
    tz = state.settings.tz
    until = _aware(until, tz, "until") or datetime.now(UTC)
    since = _aware(since, tz, "since") or until - DEFAULT_DEPTH_WINDOW
    _check_range(since, until)
    try:
        return await devices.depth_series(
            db, state.settings.config, device_id, since=since, until=until, max_points=max_points
        )
    except devices.UnknownDevice as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None


ByQuery = Annotated[kpis.GroupBy, Query(description="group by owning department, kind or day")]


def kpi_range(
    state: State, since: SinceQuery = None, until: UntilQuery = None
) -> tuple[datetime, datetime]:
    """The KPI range asked for: [since, until), by default the last 7 local days to now."""
    tz = state.settings.tz
    end = _aware(until, tz, "until") or datetime.now(UTC)
    if since is None:
        today = end.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
        since = today - timedelta(days=DEFAULT_KPI_DAYS - 1)
    start = _aware(since, tz, "since")
    assert start is not None
    _check_range(start, end)
    return start, end


KpiRange = Annotated[tuple[datetime, datetime], Depends(kpi_range)]


@router.get("/kpis")
async def kpi_report(
    db: Db, state: State, user: Viewer, span: KpiRange, by: ByQuery = "department"
) -> kpis.KpiReport:
    """三率 (response, handling, satisfaction*), closure and on-time rates of the orders
    opened in [since, until) (default: the last 7 local days). *Satisfaction is a proxy:
    the share of verifications that passed, as there is no call-back data."""
    return await kpis.report(
        db,
        since=span[0],
        until=span[1],
        by=by,
        timezone=state.settings.config.site.timezone,
        workflow=state.settings.config.workflow,
    )


@router.get("/kpis.csv", response_class=Response, responses={200: {"content": {"text/csv": {}}}})
async def kpi_csv(
    db: Db, state: State, user: Viewer, span: KpiRange, by: ByQuery = "department"
) -> Response:
    """The KPI report of `GET /kpis` (same range and grouping) as a CSV file, totals last."""
    report = await kpi_report(db, state, user, span, by)
    header, rows = kpis.report_table(report)
    local = state.settings.tz
    name = f"kpis-{by}-{span[0].astimezone(local):%Y%m%d}-{span[1].astimezone(local):%Y%m%d}"
    return Response(
        csv_text(header, rows), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )  # fmt: skip


@router.get("/kpis/summary")
async def kpi_summary(db: Db, user: Viewer) -> kpis.KpiSummary:
    """Open, overdue and escalated orders now, and every order by state."""
    return await kpis.summary(db, now=datetime.now(UTC))


@router.get("/site")
def site(state: State, user: Viewer) -> site_map.SiteView:
    """The site's grid, boundary GeoJSON, map tiles, departments and categories (a plain
    function: FastAPI runs it in a thread, so reading the GeoJSON blocks no one)."""
    try:
        return site_map.site_view(state.settings.config, state.settings.config_dir)
    except site_map.BoundaryError as error:
        log.error("site boundary: %s", error)
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, str(error)) from None
