"""Routing and priority of a new work order (pure).

Routing reads the config's ``workflow.categories``: which class code (GB/T 30428-style)
and owning department receive an alert kind, and which SLA tier times it. Cities number
and assign these differently, so none of it is written here (DOMAIN.md).

Priority runs from 1 (most urgent) to 4 and orders the dispatcher's queue. The table:

==================  ======================================================================
step                rule
==================  ======================================================================
base by kind        smoke 1 · waterlogging 3 · illegal_parking 3 · device_fault 3 ·
                    street_vending 4
water depth level   waterlogging takes its deepest level's priority when that is more
                    urgent: ``closure`` 1 · ``underpass_closure`` 2 · ``lane`` 3
                    (level names are the site's, from ``waterlogging.level_policy``)
low confidence      the highest confidence below 0.5 makes it one step less urgent
                    (a machine that is unsure should not jump the queue)
corroboration       3 or more independent sources (distinct devices) make it one step
                    more urgent (several cameras and a drone on one plume)
clamp               the result stays within 1–4
==================  ======================================================================

The numbers live in :class:`PriorityPolicy` so that a site can be given its own once the
config grows a ``workflow.priority`` section.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from citywatch.config.workflow import SlaTier, Workflow
from citywatch.contracts.messages import Alert, AlertKind

HIGHEST = 1
LOWEST = 4


class RoutingError(LookupError):
    """The config cannot route an alert kind (no category, or a category naming no tier)."""


@dataclass(frozen=True)
class Routing:
    """Where a work order of one kind goes: its class, owning department and SLA tier."""

    kind: AlertKind
    category_code: str
    category_name: str
    department: str
    sla_tier: SlaTier


def route(
    workflow: Workflow,
    kind: AlertKind,
    *,
    priority: int | None = None,
    priority_sla: Mapping[int, str] | None = None,
) -> Routing:
    """The category, department and SLA tier that receive alerts of ``kind``.

    ``priority_sla`` maps a priority to a tier id that replaces the category's tier, for the
    "emergency: same day / immediately" override cities apply to the worst cases; it stands
    in for a per-category config field that does not exist yet.
    """
    category = next((c for c in workflow.categories if c.kind == kind), None)
    if category is None:
        known = sorted(c.kind.value for c in workflow.categories)
        raise RoutingError(
            f"no category receives alerts of kind {kind.value!r}: add one to "
            f"workflow.categories (routed kinds: {known})"
        )
    tier_id = category.sla
    if priority is not None and priority_sla and priority in priority_sla:
        tier_id = priority_sla[priority]
    tier = next((t for t in workflow.sla.tiers if t.id == tier_id), None)
    if tier is None:
        declared = sorted(t.id for t in workflow.sla.tiers)
        raise RoutingError(
            f"category {category.code} ({kind.value}) uses SLA tier {tier_id!r}, which is not "
            f"declared in workflow.sla.tiers ({declared})"
        )
    return Routing(kind, category.code, category.name, category.department, tier)


def _frozen(mapping: Mapping[str, int]) -> Mapping[str, int]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class PriorityPolicy:
    """The numbers of the priority table in the module docstring."""

    base: Mapping[AlertKind, int] = field(
        default_factory=lambda: MappingProxyType(
            {
                AlertKind.SMOKE: 1,
                AlertKind.WATERLOGGING: 3,
                AlertKind.ILLEGAL_PARKING: 3,
                AlertKind.DEVICE_FAULT: 3,
                AlertKind.STREET_VENDING: 4,
            }
        )
    )
    depth_levels: Mapping[str, int] = field(
        default_factory=lambda: _frozen({"closure": 1, "underpass_closure": 2, "lane": 3})
    )
    low_confidence: float = 0.5
    corroborating_sources: int = 3

    def __post_init__(self) -> None:
        for name, value in [*self.base.items(), *self.depth_levels.items()]:
            if not HIGHEST <= value <= LOWEST:
                raise ValueError(f"priority for {name!r} is {value}; priorities run 1–4")
        if self.corroborating_sources < 2:
            raise ValueError("corroboration needs at least 2 independent sources")


DEFAULT_POLICY = PriorityPolicy()


def priority(
    kind: AlertKind,
    *,
    max_confidence: float,
    depth_level: str | None = None,
    sources: int = 1,
    policy: PriorityPolicy = DEFAULT_POLICY,
) -> int:
    """Priority 1 (most urgent) to 4 of a problem, by the table in the module docstring."""
    value = policy.base.get(kind, LOWEST)
    if kind is AlertKind.WATERLOGGING and depth_level is not None:
        value = min(value, policy.depth_levels.get(depth_level, LOWEST))
    if max_confidence < policy.low_confidence:
        value += 1
    if sources >= policy.corroborating_sources:
        value -= 1
    return max(HIGHEST, min(LOWEST, value))


def priority_of_alerts(alerts: Iterable[Alert], policy: PriorityPolicy = DEFAULT_POLICY) -> int:
    """Priority of the problem a set of merged alerts (one kind) report.

    Sources are distinct devices, so one camera repeating itself is not corroboration; the
    depth level is the most urgent ``level`` any alert carried.
    """
    alerts = list(alerts)
    if not alerts:
        raise ValueError("a priority needs at least one alert")
    kinds = {a.kind for a in alerts}
    if len(kinds) != 1:
        raise ValueError(f"alerts of one problem share a kind; got {sorted(kinds)}")
    ranked = [a.level for a in alerts if a.level is not None and a.level in policy.depth_levels]
    deepest = min(ranked, key=lambda lv: policy.depth_levels[lv]) if ranked else None
    return priority(
        kinds.pop(),
        max_confidence=max(a.confidence for a in alerts),
        depth_level=deepest,
        sources=len({(a.device.site, a.device.kind, a.device.id) for a in alerts}),
        policy=policy,
    )
