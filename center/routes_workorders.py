"""Work orders: list and filter (and export as CSV), one order in full, the actions of the
work-order state machine, photo attachments, and orders people open by hand (a 12345 call,
a citizen's report), which join an open order of the same problem instead of doubling it.

Actions run in one transaction: the order's row is locked (``FOR UPDATE``), rebuilt, the
pure state machine (:mod:`citywatch.workorder.lifecycle`) applies the action — or refuses it
(409) or its arguments (422) — and the changed columns and the new event are written; the
event's trigger notifies the live feed. The stream tier checks the same row's ``seq`` before
it saves, so a person's action is never overwritten by a worker's stale copy.
"""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from citywatch.center.audit import record
from citywatch.center.auth import allows
from citywatch.center.deps import Acting, Db, Operator, State, Viewer
from citywatch.center.evidence_files import evidence_url
from citywatch.center.hotline import ManualReport, file_report
from citywatch.center.params import Moment, Name, Text, checked_time
from citywatch.center.params import bbox as parse_bbox
from citywatch.center.workorder_queries import (
    CSV_COLUMNS,
    MAX_LIMIT,
    BadCursor,
    Filters,
    Sort,
    csv_text,
    export_rows,
    list_page,
    order_parts,
    order_row,
    summary,
)
from citywatch.config import CitywatchConfig
from citywatch.config.base import Duration
from citywatch.storage.workorders import UnknownTier, load_for_update, order_from_row, save_action
from citywatch.workorder.lifecycle import (
    Action,
    ActionArgumentError,
    TransitionRefused,
    allowed_actions,
    apply,
)

router = APIRouter(prefix="/api/v1", tags=["work orders"])
OrderId = Annotated[str, Path(min_length=1, max_length=200)]
IMAGE_TYPES = {"image/jpeg": b"\xff\xd8\xff", "image/png": b"\x89PNG\r\n\x1a\n"}


def _now() -> datetime:
    return datetime.now(UTC)


def list_filters(
    state: Annotated[list[Name], Query(description="any of these states")] = [],  # noqa: B006
    open: Annotated[
        bool | None, Query(description="only open (true) or only finished (false)")
    ] = None,
    kind: Annotated[list[Name], Query()] = [],  # noqa: B006
    district: Name | None = None,
    street: Name | None = None,
    community: Name | None = None,
    department: Name | None = None,
    priority: Annotated[list[Annotated[int, Field(ge=1, le=4)]], Query()] = [],  # noqa: B006
    since: Annotated[AwareDatetime | None, Query(description="opened at or after")] = None,
    until: Annotated[AwareDatetime | None, Query(description="opened before")] = None,
    bbox: Annotated[str | None, Query(description="minLon,minLat,maxLon,maxLat")] = None,
    overdue: Annotated[bool | None, Query(description="open and past due")] = None,
    escalated: bool | None = None,
) -> Filters:
    """The list's filters from the query (shared by the list and its CSV export)."""
    return Filters(
        state=state, open=open, kind=kind, district=district, street=street, community=community,
        department=department, priority=priority, since=checked_time(since, "since"),
        until=checked_time(until, "until"), bbox=parse_bbox(bbox),
        overdue=overdue, escalated=escalated,
    )  # fmt: skip


ListFilters = Annotated[Filters, Depends(list_filters)]
SortQuery = Annotated[
    Sort,
    Query(description="newest first, or urgency: overdue, then priority 1→4, then least time left"),
]


@router.get("/work-orders")
async def list_work_orders(
    db: Db,
    user: Viewer,
    filters: ListFilters,
    sort: SortQuery = "newest",
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=1000, description="next_cursor of the previous page")
    ] = None,
) -> dict[str, Any]:
    """Work orders, filtered, newest first or most urgent first; page on with `next_cursor`."""
    try:
        return await list_page(db, filters, limit, cursor, _now(), sort)
    except BadCursor as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None


@router.get("/work-orders.csv", response_class=Response,
            responses={200: {"content": {"text/csv": {}}}})  # fmt: skip
async def export_work_orders(
    db: Db, user: Viewer, filters: ListFilters, sort: SortQuery = "newest"
) -> Response:
    """The list under the same filters as a CSV file (UTF-8 with BOM, at most 20,000 rows)."""
    rows = await export_rows(db, filters, _now(), sort)
    text = csv_text(CSV_COLUMNS, [[r.get(c) for c in CSV_COLUMNS] for r in rows])
    stamp = _now().strftime("%Y%m%d-%H%M")
    return Response(
        text, media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="work-orders-{stamp}.csv"'},
    )  # fmt: skip


def _sla(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    stopped = row["resolved_at"] or (row["closed_at"] if row["state"] == "false_positive" else None)
    due = row["due_at"]
    until = (stopped or now) if due else None
    return {
        "tier": row["sla_tier"],
        "due_at": due,
        "clock_started_at": row["clock_started_at"],
        "stopped_at": stopped,
        "remaining_s": (due - until).total_seconds() if due and until else None,
        "overdue": bool(due and until and until > due),
    }


async def _detail(db: Db, state: State, order_id: str, role: str) -> dict[str, Any]:
    now = _now()
    row = await order_row(db, order_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no work order {order_id}")
    parts = await order_parts(db, order_id)
    evidence: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    alerts = []
    for alert in parts["alerts"]:
        refs = []
        for ref in alert.pop("evidence") or []:
            kind = str(ref.get("kind"))
            entry = {"kind": kind, "content_type": ref.get("content_type"),
                     "url": evidence_url(alert["id"], kind)}  # fmt: skip
            refs.append(entry)
            if (alert["id"], kind) not in seen:
                seen.add((alert["id"], kind))
                evidence.append({"alert_id": alert["id"], **entry})
        alerts.append(alert | {"evidence": refs})
    for notice in parts["notices"]:
        key = (notice["alert_id"], notice["kind"])
        if key not in seen:
            seen.add(key)
            evidence.append({"alert_id": notice["alert_id"], "kind": notice["kind"],
                             "content_type": notice["content_type"],
                             "url": evidence_url(*key)})  # fmt: skip
    registry = {d.id: (k, d.name) for k, d in state.settings.config.devices.all()}
    devices = sorted({(a["device_kind"], a["device_id"]) for a in alerts})
    actions: list[str] = []
    if allows(role, "operator"):
        try:
            order = order_from_row(
                row | {"alert_ids": []}, state.settings.config.workflow, state.settings.tz
            )
            actions = allowed_actions(order)
        except UnknownTier:
            actions = []
    attributes = row["attributes"] or {}
    return summary(row, now) | {
        "routed_department": routed_department(state.settings.config, row["kind"]),
        "report": {k: attributes[k] for k in ("description", "contact") if k in attributes},
        "alerts": alerts,
        "evidence": evidence,
        "devices": [
            {"kind": k, "id": i, "name": registry.get(i, (k, ""))[1], "in_registry": i in registry}
            for k, i in devices
        ],
        "timeline": parts["timeline"],
        "sla": _sla(row, now),
        "allowed_actions": actions,
        "attachments": [
            a | {"url": f"/api/v1/attachments/{a['id']}"} for a in parts["attachments"]
        ],
    }


def routed_department(config: CitywatchConfig, kind: str) -> str | None:
    """The department the config routes ``kind`` to (what dispatch offers first)."""
    return next((c.department for c in config.workflow.categories if c.kind.value == kind), None)


@router.get("/work-orders/{order_id}")
async def get_work_order(order_id: OrderId, db: Db, state: State, user: Viewer) -> dict[str, Any]:
    """One work order with its alerts, evidence, timeline, SLA state and the actions the
    caller may take now."""
    return await _detail(db, state, order_id, user.role)


class ActionBody(BaseModel):
    """Arguments of an action; each action takes only its own (others → 422)."""

    model_config = ConfigDict(extra="forbid")

    reason: Text | None = None
    department: Name | None = Field(default=None, description="dispatch: the department id")
    grounds: Text | None = Field(default=None, description="return (退单): why it is not ours")
    new_due: Moment | None = Field(default=None, description="extend: the new deadline")
    duration: Name | None = Field(default=None, description="extend: e.g. '4h', '2d'")
    note: Text | None = Field(default=None, description="resolve, verify, close")
    photo_id: Name | None = Field(default=None, description="resolve: an uploaded attachment")
    passed: bool | None = Field(default=None, description="verify: did the fix hold")
    level: Name | None = Field(default=None, description="escalate: community, street or district")
    expected_seq: int | None = Field(
        default=None, description="refuse (409) if the order changed since you read this seq"
    )


ARGUMENTS: dict[Action, tuple[str, ...]] = {
    Action.FILE: ("reason",),
    Action.DISPATCH: ("department", "reason"),
    Action.SIGN: (),
    Action.RETURN: ("grounds",),
    Action.EXTEND: ("reason", "new_due", "duration"),
    Action.START: (),
    Action.RESOLVE: ("note", "photo_id"),
    Action.VERIFY: ("passed", "note"),
    Action.CLOSE: ("note",),
    Action.MARK_FALSE_POSITIVE: ("reason",),
    Action.REOPEN: ("reason",),
    Action.ESCALATE: ("level", "reason"),
}
_DURATION: TypeAdapter[timedelta] = TypeAdapter(Duration)


def _arguments(
    action: Action, body: ActionBody, departments: set[str], routed: str | None
) -> dict[str, Any]:
    given = body.model_dump(exclude_none=True, exclude={"expected_seq"})
    extra = sorted(set(given) - set(ARGUMENTS[action]))
    if extra:
        raise ActionArgumentError(
            f"{action.value} takes {', '.join(ARGUMENTS[action]) or 'no arguments'};"
            f" not {', '.join(extra)}"
        )
    if "department" in given and given["department"] not in departments:
        raise ActionArgumentError(
            f"unknown department {given['department']!r}; departments: {', '.join(sorted(departments))}"
        )
    if (action is Action.DISPATCH and routed is not None and given.get("department") != routed
            and not (given.get("reason") or "").strip()):  # fmt: skip
        raise ActionArgumentError(
            f"dispatching to {given.get('department')!r} instead of the routed department"
            f" {routed!r} needs a reason"
        )
    if action is Action.VERIFY and "passed" not in given:
        raise ActionArgumentError("verify needs passed: true or false")
    if "duration" in given:
        try:
            given["duration"] = _DURATION.validate_python(given["duration"])
        except ValidationError:
            raise ActionArgumentError(
                f"duration {given['duration']!r} is not a duration like '4h' or '2d'"
            ) from None
    if "photo_id" in given:
        given["photo"] = given.pop("photo_id")
    return given


@router.post("/work-orders/{order_id}/actions/{action}")
async def act(
    order_id: OrderId, action: Action, db: Db, state: State, user: Operator, acting: Acting,
    body: ActionBody | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Take one action of the work-order state machine, recorded with the acting user.

    409 when the order's state does not allow it (the response names the state and what is
    allowed) or `expected_seq` is stale; 422 when its arguments are missing or wrong.
    """
    body = body or ActionBody()
    settings = state.settings
    departments = {d.id for d in settings.config.workflow.departments}
    try:
        async with db.transaction():
            order = await load_for_update(db, order_id, settings.config.workflow, settings.tz)
            if order is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"no work order {order_id}")
            routed = routed_department(settings.config, order.kind.value)
            args = _arguments(action, body, departments, routed)
            if body.expected_seq is not None and body.expected_seq != order.seq:
                raise HTTPException(
                    status.HTTP_409_CONFLICT,
                    {"message": f"work order {order_id} changed (seq {order.seq}, you read"
                     f" {body.expected_seq}): reload it", "state": order.state.value,
                     "allowed": allowed_actions(order)},
                )  # fmt: skip
            if "photo" in args:
                found = await db.execute(
                    "SELECT 1 FROM work_order_attachments WHERE id = %s AND work_order_id = %s",
                    (args["photo"], order_id),
                )
                if await found.fetchone() is None:
                    raise ActionArgumentError(f"no attachment {args['photo']} on {order_id}")
            transition = apply(order, action, actor=user.name, time=_now(), **args)
            elsewhere = action is Action.DISPATCH and args["department"] != routed
            if elsewhere and routed is not None:  # the timeline says what it was routed to
                data = {**transition.data, "routed_department": routed}
                transition = dataclasses.replace(transition, data=data)
            await save_action(db, order, [transition])
            await record(
                db, acting, f"workorder.{action.value}", order_id,
                **body.model_dump(mode="json", exclude_none=True),
                **({"routed_department": routed} if elsewhere and routed else {}),
            )  # fmt: skip
    except TransitionRefused as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            {"message": str(exc), "state": exc.state.value, "allowed": exc.allowed},
        ) from None
    except UnknownTier as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, {"message": str(exc)}) from None
    except ActionArgumentError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return await _detail(db, state, order_id, user.role)


@router.post("/work-orders", status_code=status.HTTP_201_CREATED)
async def open_by_hand(
    report: ManualReport, response: Response, db: Db, state: State, user: Operator,
    acting: Acting,
) -> dict[str, Any]:  # fmt: skip
    """Open a work order from a 12345 call or a citizen's report (attach its photo after, by
    `POST /work-orders/{id}/attachments`). A report at the spot of an open order of the same
    kind — within the kind's dedup radius — joins that order as a `complaint` event instead
    (200, `joined: true`)."""
    settings = state.settings
    try:
        async with db.transaction():
            filed = await file_report(
                db, report, settings.config, settings.tz, actor=user.name, now=_now()
            )
            await record(
                db, acting, "workorder.complaint" if filed.joined else "workorder.opened",
                filed.order_id, **report.model_dump(mode="json", exclude_none=True),
            )  # fmt: skip
    except ActionArgumentError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    except UnknownTier as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, {"message": str(exc)}) from None
    if filed.joined:
        response.status_code = status.HTTP_200_OK
    detail = await _detail(db, state, filed.order_id, user.role)
    return {"joined": filed.joined, "distance_m": filed.distance_m, "work_order": detail}


@router.post("/work-orders/{order_id}/attachments", status_code=status.HTTP_201_CREATED)
async def attach(
    order_id: OrderId, request: Request, db: Db, state: State, user: Operator, acting: Acting
) -> dict[str, str]:
    """Upload a photo (raw JPEG or PNG body); pass its id as `photo_id` when resolving."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in IMAGE_TYPES:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"send the photo as the raw body with Content-Type {' or '.join(IMAGE_TYPES)}",
        )
    limit = state.settings.config.center.max_photo_bytes
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise HTTPException(
                status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, f"photos are limited to {limit} bytes"
            )
    if not bytes(data).startswith(IMAGE_TYPES[content_type]):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"the body is not a {content_type} image"
        )
    attachment_id = f"att-{uuid.uuid4().hex}"
    async with db.transaction():
        exists = await (
            await db.execute("SELECT 1 FROM work_orders WHERE id = %s", (order_id,))
        ).fetchone()
        if exists is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no work order {order_id}")
        await db.execute(
            """INSERT INTO work_order_attachments (id, work_order_id, content_type, sha256, data,
                   uploaded_by) VALUES (%s, %s, %s, %s, %s, %s)""",
            (attachment_id, order_id, content_type, hashlib.sha256(data).hexdigest(),
             bytes(data), user.name),
        )  # fmt: skip
        await record(db, acting, "attachment.uploaded", order_id, attachment=attachment_id,
                     content_type=content_type, bytes=len(data))  # fmt: skip
    return {"id": attachment_id, "url": f"/api/v1/attachments/{attachment_id}"}


@router.get("/attachments/{attachment_id}", response_class=Response)
async def attachment(
    attachment_id: Annotated[str, Path(min_length=1, max_length=100)], db: Db, user: Viewer
) -> Response:
    """A photo attached to a work order."""
    found = await db.execute(
        "SELECT content_type, data FROM work_order_attachments WHERE id = %s", (attachment_id,)
    )
    row = await found.fetchone()
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no attachment {attachment_id}")
    return Response(
        content=bytes(row[1]), media_type=row[0], headers={"Cache-Control": "private, max-age=3600"}
    )
