"""Work orders people open by hand: a 12345 hotline call or a citizen's report taken by the
duty officer, deduplicated with what the machines already reported.

A complaint about a spot where an open order of the same category already stands — within
that category's dedup radius (``workflow.dedup``) — is the same problem: it joins that
order as a ``complaint`` event on its timeline (its state and clock unchanged) instead of
opening a second order that two departments would then chase. Otherwise a new order opens,
reported by the person who took the call and filed (立案) at once: taking the call is the
intake. Its SQL is :mod:`citywatch.storage.workorders`'; the route is in
:mod:`.routes_workorders`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Literal

from psycopg import AsyncConnection
from pydantic import BaseModel, ConfigDict, Field

from citywatch.center.params import Name, Text
from citywatch.config import CitywatchConfig
from citywatch.config.site import Placement
from citywatch.contracts import AlertKind
from citywatch.storage.workorders import (
    insert_manual_order,
    load_for_update,
    nearest_open_order,
    save_action,
)
from citywatch.workorder.lifecycle import (
    OPEN_STATES,
    ActionArgumentError,
    file,
    open_work_order,
    record_transition,
)
from citywatch.workorder.priority import DEFAULT_POLICY, RoutingError, route

OPEN = sorted(s.value for s in OPEN_STATES)


class ManualReport(BaseModel):
    """What the duty officer types in from a call or a citizen's report."""

    model_config = ConfigDict(extra="forbid")

    kind: AlertKind = Field(description="the category's kind (what the list calls it)")
    reported_via: Literal["hotline", "citizen"] = Field(
        default="hotline", description="hotline: a 12345 call; citizen: a report in person/app"
    )
    description: Text = Field(min_length=1, description="what the caller reports, in their words")
    lat: float | None = Field(default=None, ge=-90, le=90, description="WGS84; with lon")
    lon: float | None = Field(default=None, ge=-180, le=180)
    district: Name | None = Field(default=None, description="default: the site's first district")
    street: Name | None = None
    community: Name | None = None
    contact: Name | None = Field(default=None, description="whom to call back (optional)")
    priority: int | None = Field(default=None, ge=1, le=4, description="default: by kind")


@dataclass(frozen=True)
class Filed:
    """Where a report went: a new order, or an open one it joined (and how far away)."""

    order_id: str
    joined: bool
    distance_m: float | None = None


def placement(report: ManualReport, config: CitywatchConfig) -> Placement:
    """The grid cell the report names (checked against the site's grid)."""
    units = config.site.grid_units()
    for level in ("district", "street", "community"):
        value = getattr(report, level)
        if value is not None and units.get(value) != level:
            raise ActionArgumentError(f"{level} {value!r} is not a {level} of the site's grid")
    return Placement(
        district=report.district or config.site.districts[0].id,
        street=report.street,
        community=report.community,
    )


async def file_report(
    conn: AsyncConnection, report: ManualReport, config: CitywatchConfig, tz: tzinfo, *,
    actor: str, now: datetime,
) -> Filed:  # fmt: skip
    """Join the open order of the same problem or open a new one (call inside a
    transaction: the joined order's row is locked while its event is added)."""
    if (report.lat is None) != (report.lon is None):
        raise ActionArgumentError("give both lat and lon, or neither")
    workflow = config.workflow
    where = placement(report, config)
    policy = workflow.dedup.get(report.kind)
    if report.lat is not None and report.lon is not None and policy is not None:
        near = await nearest_open_order(
            conn, report.kind.value, report.lat, report.lon, policy.radius_m, OPEN
        )
        if near is not None:
            order = await load_for_update(conn, near[0], workflow, tz)
            if order is not None and order.state in OPEN_STATES:
                event = record_transition(
                    order, "complaint", order.state, actor=actor, time=now,
                    reason=report.description,
                    data={"reported_via": report.reported_via, "distance_m": round(near[1], 1),
                          **({"contact": report.contact} if report.contact else {})},
                )  # fmt: skip
                await save_action(conn, order, [event])
                return Filed(order.id, joined=True, distance_m=near[1])
    try:
        routing = route(workflow, report.kind)
    except RoutingError as error:
        raise ActionArgumentError(str(error)) from None
    order = open_work_order(
        id=f"{report.reported_via}.{now:%Y%m%d}.{uuid.uuid4().hex[:12]}", routing=routing,
        priority=report.priority or DEFAULT_POLICY.base.get(report.kind, 4), opened_at=now,
        placement=where, alert_ids=(), calendar=workflow.sla.calendar, tz=tz,
        auto_file=False, actor=actor,
    )  # fmt: skip
    file(order, actor=actor, time=now, reason=report.description)
    attributes = {"reported_via": report.reported_via, "description": report.description}
    if report.contact:
        attributes["contact"] = report.contact
    await insert_manual_order(conn, order, lat=report.lat, lon=report.lon, attributes=attributes)
    return Filed(order.id, joined=False)
