"""What happens to an alert: its category (GB/T 30428-style), owning department, dedup
policy, SLA time limits over a working calendar, and escalation.

The mapping from detection kind to class code and department is configuration, never
code: cities number and assign these differently (DOMAIN.md).
"""

from __future__ import annotations

from datetime import date, time, timedelta
from typing import Literal

from pydantic import Field, model_validator

from citywatch.config.base import ConfigModel, Duration, Identifier
from citywatch.contracts.messages import AlertKind


class Department(ConfigModel):
    id: Identifier
    name: str = Field(description="e.g. 城管执法局 urban management")


class Category(ConfigModel):
    """One event class and who owns it."""

    kind: AlertKind = Field(description="detection kind this category receives")
    code: str = Field(pattern=r"^\d{2}-\d{2}$", description="class code, e.g. 04-06 道路积水")
    name: str
    department: Identifier = Field(description="owning department id")
    sla: Identifier = Field(default="general", description="SLA tier id from sla.tiers")


class DedupPolicy(ConfigModel):
    """When alerts of one kind are one problem."""

    radius_m: float = Field(gt=0, le=5000, description="alerts closer than this may merge")
    window: Duration = Field(description="and closer in time than this")
    quiet: Duration = Field(
        default=timedelta(minutes=10),
        description="an incident closes this long after its last alert ended",
    )
    reopen: Duration = Field(
        default=timedelta(hours=24),
        description="a recurrence (复发) within this reopens the work order or opens a linked one",
    )
    recurrence: Literal["reopen", "new_linked"] = Field(
        default="reopen",
        title="What a recurrence (复发) does",
        description=(
            "reopen: the closed work order again (one problem that came back, e.g. the same "
            "flooded underpass); new_linked: a new work order linked to the previous one as "
            "复发 (one case per occurrence, e.g. a vendor back every evening: its own dispatch, "
            "SLA and closure, the spot flagged as recurring)"
        ),
    )


def _default_dedup() -> dict[AlertKind, DedupPolicy]:
    minutes = lambda n: timedelta(minutes=n)  # noqa: E731
    return {
        # A car parked again, a vendor back again: each occurrence is its own case (复发 linked).
        AlertKind.ILLEGAL_PARKING: DedupPolicy(
            radius_m=15, window=minutes(30), recurrence="new_linked"
        ),
        AlertKind.STREET_VENDING: DedupPolicy(
            radius_m=30, window=minutes(60), recurrence="new_linked"
        ),
        # Smoke, water and a device fault that come back are the same problem not yet fixed.
        AlertKind.SMOKE: DedupPolicy(radius_m=300, window=minutes(30)),
        AlertKind.WATERLOGGING: DedupPolicy(radius_m=100, window=minutes(60)),
        AlertKind.DEVICE_FAULT: DedupPolicy(radius_m=1, window=minutes(60)),
    }


class WorkingCalendar(ConfigModel):
    """Working hours and days, for SLAs counted in working time."""

    workdays: tuple[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ...] = (
        "mon",
        "tue",
        "wed",
        "thu",
        "fri",
    )
    hours: tuple[tuple[time, time], ...] = Field(
        default=((time(9), time(12)), (time(13, 30), time(17, 30))),
        description="working periods of a working day, local time",
    )
    holidays: tuple[date, ...] = Field(default=(), description="days off on a weekday")
    extra_workdays: tuple[date, ...] = Field(default=(), description="weekend days worked (调休)")

    @model_validator(mode="after")
    def _hours_make_sense(self) -> WorkingCalendar:
        if not self.workdays:
            raise ValueError("a working calendar needs at least one working day")
        if not self.hours:
            raise ValueError("a working calendar needs at least one working period")
        previous_end: time | None = None
        for start, end in self.hours:
            if end != time(0) and end <= start:
                raise ValueError(f"working period {start}–{end} ends before it starts")
            if previous_end is not None and (previous_end == time(0) or start < previous_end):
                raise ValueError("working periods must be in order and must not overlap")
            previous_end = end
        return self


class SlaTier(ConfigModel):
    """A time limit; ``clock`` says whether it runs in natural or working time."""

    id: Identifier
    limit: Duration = Field(description="time allowed, e.g. 30m, 4h, 3d")
    clock: Literal["natural", "working"] = "natural"
    label: str = ""

    @model_validator(mode="after")
    def _positive(self) -> SlaTier:
        if self.limit.total_seconds() <= 0:
            raise ValueError("an SLA limit must be longer than zero")
        return self


def _default_tiers() -> tuple[SlaTier, ...]:
    # "137": simple 1 day, general 3 days, hard 7 days; waterlogging 30 min; smoke minutes.
    return (
        SlaTier(id="simple", limit=timedelta(days=1), label="简易 1 day"),
        SlaTier(id="general", limit=timedelta(days=3), label="一般 3 days"),
        SlaTier(id="hard", limit=timedelta(days=7), label="疑难 7 days (plan)"),
        SlaTier(id="waterlogging", limit=timedelta(minutes=30), label="积水 30 min"),
        SlaTier(id="smoke", limit=timedelta(minutes=10), label="烟火 10 min"),
    )


class EscalationStep(ConfigModel):
    level: Literal["community", "street", "district"]
    after_fraction: float = Field(gt=0, le=10, description="of the SLA limit elapsed")


class Sla(ConfigModel):
    calendar: WorkingCalendar = WorkingCalendar()
    tiers: tuple[SlaTier, ...] = Field(default_factory=_default_tiers, min_length=1)
    escalation: tuple[EscalationStep, ...] = (
        EscalationStep(level="community", after_fraction=0.8),
        EscalationStep(level="street", after_fraction=1.0),
        EscalationStep(level="district", after_fraction=2.0),
    )

    @model_validator(mode="after")
    def _escalation_climbs(self) -> Sla:
        order = {"community": 0, "street": 1, "district": 2}
        steps = [(order[s.level], s.after_fraction) for s in self.escalation]
        if steps != sorted(steps) or len({lvl for lvl, _ in steps}) != len(steps):
            raise ValueError(
                "escalation steps climb community → street → district, once each, later each time"
            )
        return self

    @model_validator(mode="after")
    def _unique_tiers(self) -> Sla:
        ids = [tier.id for tier in self.tiers]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"SLA tier ids must be unique; repeated: {duplicates}")
        return self


class MachineReports(ConfigModel):
    """What happens to a report from a camera, sensor or drone (no person filed it)."""

    auto_file: bool = Field(
        default=True, description="立案 at once: machine reports need no intake"
    )
    auto_dispatch: bool = Field(
        default=False, description="智能派单: dispatch to the owning department at once"
    )


class Workflow(ConfigModel):
    machine_reports: MachineReports = MachineReports()
    reopen_to: Literal["filed", "dispatched", "reopened"] = Field(
        default="dispatched",
        description="where a closed work order goes when the problem recurs (复发)",
    )
    departments: tuple[Department, ...] = Field(min_length=1)
    categories: tuple[Category, ...] = Field(min_length=1)
    dedup: dict[AlertKind, DedupPolicy] = Field(default_factory=_default_dedup)
    late_data: Duration = Field(
        default=timedelta(days=7),
        gt=timedelta(0),
        title="How late an alert may arrive and still join its work order",
        description=(
            "a gateway's outbox keeps alerts through a long outage; the stream keeps closed "
            "incidents this long (or reopen, if longer) so that a backlog delivered later "
            "still lands in, or folds into, the work order of its problem"
        ),
    )
    sla: Sla = Sla()
