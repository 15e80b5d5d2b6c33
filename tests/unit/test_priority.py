"""Routing from the config's category table, and the priority table."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from citywatch.config import CitywatchConfig
from citywatch.config.workflow import Category, Department, Workflow
from citywatch.contracts.messages import Alert, AlertKind, DeviceKind, DeviceRef, Location, Phase
from citywatch.workorder.priority import (
    PriorityPolicy,
    RoutingError,
    priority,
    priority_of_alerts,
    route,
)

K = AlertKind


@pytest.mark.parametrize(
    ("kind", "code", "department", "tier"),
    [
        pytest.param(
            K.WATERLOGGING, "04-06", "drainage", "waterlogging", id="waterlogging to drainage"
        ),
        pytest.param(
            K.STREET_VENDING, "05-01", "urban-mgmt", "simple", id="vending to urban management"
        ),
        pytest.param(
            K.ILLEGAL_PARKING, "05-05", "urban-mgmt", "simple", id="parking to urban management"
        ),
        pytest.param(K.SMOKE, "05-10", "fire", "smoke", id="smoke to fire and rescue"),
        pytest.param(
            K.DEVICE_FAULT, "99-01", "ops-it", "general", id="device fault to operations IT"
        ),
    ],
)
def test_route_follows_the_config_category_table(
    demo_config: CitywatchConfig, kind: AlertKind, code: str, department: str, tier: str
) -> None:
    """Each kind gets the class code, owning department and SLA tier the config gives it."""
    routing = route(demo_config.workflow, kind)
    assert (routing.kind, routing.category_code, routing.department, routing.sla_tier.id) == (
        kind,
        code,
        department,
        tier,
    )


def test_route_changes_with_the_config_not_the_code() -> None:
    """A city that gives parking to the traffic police gets it routed there."""
    workflow = Workflow(
        departments=(Department(id="traffic-police", name="交警"),),
        categories=(
            Category(
                kind=K.ILLEGAL_PARKING, code="05-05", name="乱停放", department="traffic-police"
            ),
        ),
    )
    routing = route(workflow, K.ILLEGAL_PARKING)
    assert (routing.department, routing.sla_tier.id) == ("traffic-police", "general")


def test_priority_override_picks_another_tier(demo_config: CitywatchConfig) -> None:
    """A priority-1 override replaces the category's tier (the "emergency" rule)."""
    routing = route(demo_config.workflow, K.ILLEGAL_PARKING, priority=1, priority_sla={1: "smoke"})
    assert routing.sla_tier.id == "smoke"
    assert (
        route(
            demo_config.workflow, K.ILLEGAL_PARKING, priority=3, priority_sla={1: "smoke"}
        ).sla_tier.id
        == "simple"
    )


def test_unrouted_kind_names_the_config_section(demo_config: CitywatchConfig) -> None:
    """A kind with no category raises an error pointing at workflow.categories."""
    workflow = demo_config.workflow.model_copy(
        update={
            "categories": tuple(c for c in demo_config.workflow.categories if c.kind != K.SMOKE)
        }
    )
    with pytest.raises(RoutingError, match=r"workflow\.categories"):
        route(workflow, K.SMOKE)


def test_unknown_override_tier_names_the_declared_tiers(demo_config: CitywatchConfig) -> None:
    """An override naming an undeclared tier lists the declared ones."""
    with pytest.raises(RoutingError, match="not declared"):
        route(demo_config.workflow, K.SMOKE, priority=1, priority_sla={1: "immediate"})


@pytest.mark.parametrize(
    ("kind", "confidence", "level", "sources", "expected"),
    [
        pytest.param(K.SMOKE, 0.9, None, 1, 1, id="smoke is most urgent"),
        pytest.param(K.SMOKE, 0.3, None, 1, 2, id="unsure smoke drops one"),
        pytest.param(K.SMOKE, 0.3, None, 3, 1, id="unsure smoke seen by three stays first"),
        pytest.param(K.SMOKE, 0.9, None, 5, 1, id="priority never goes above 1"),
        pytest.param(K.WATERLOGGING, 1.0, "closure", 1, 1, id="closure depth is 1"),
        pytest.param(K.WATERLOGGING, 1.0, "underpass_closure", 1, 2, id="underpass depth is 2"),
        pytest.param(K.WATERLOGGING, 1.0, "lane", 1, 3, id="lane depth is 3"),
        pytest.param(K.WATERLOGGING, 1.0, None, 1, 3, id="waterlogging without a level is 3"),
        pytest.param(K.WATERLOGGING, 1.0, "puddle", 1, 3, id="unknown level keeps the kind's base"),
        pytest.param(K.WATERLOGGING, 1.0, "lane", 3, 2, id="three sensors agreeing raise a lane"),
        pytest.param(K.WATERLOGGING, 1.0, "closure", 3, 1, id="closure cannot go higher"),
        pytest.param(K.ILLEGAL_PARKING, 0.8, None, 1, 3, id="parking is 3"),
        pytest.param(K.ILLEGAL_PARKING, 0.8, None, 2, 3, id="two sources are not corroboration"),
        pytest.param(K.ILLEGAL_PARKING, 0.8, None, 3, 2, id="three cameras raise parking"),
        pytest.param(
            K.ILLEGAL_PARKING, 0.8, "closure", 1, 3, id="depth levels apply only to water"
        ),
        pytest.param(K.STREET_VENDING, 0.8, None, 1, 4, id="vending is 4"),
        pytest.param(K.STREET_VENDING, 0.2, None, 1, 4, id="priority never goes below 4"),
        pytest.param(
            K.STREET_VENDING, 0.5, None, 1, 4, id="confidence at the threshold is not low"
        ),
        pytest.param(K.DEVICE_FAULT, 1.0, None, 1, 3, id="device fault is 3"),
    ],
)
def test_priority_table(
    kind: AlertKind, confidence: float, level: str | None, sources: int, expected: int
) -> None:
    """Priority follows the table in the priority module's docstring."""
    assert priority(kind, max_confidence=confidence, depth_level=level, sources=sources) == expected


def test_site_policy_overrides_the_defaults() -> None:
    """A policy with its own level names and thresholds is used instead of the defaults."""
    policy = PriorityPolicy(depth_levels={"deep": 1}, corroborating_sources=2)
    assert priority(K.WATERLOGGING, max_confidence=1.0, depth_level="deep", policy=policy) == 1
    assert priority(K.ILLEGAL_PARKING, max_confidence=1.0, sources=2, policy=policy) == 2


def test_policy_rejects_priorities_outside_the_scale() -> None:
    """A table entry outside 1–4 is refused when the policy is built."""
    with pytest.raises(ValueError, match="1–4"):
        PriorityPolicy(depth_levels={"deep": 0})


def _alert(
    device: str, confidence: float, kind: AlertKind = K.WATERLOGGING, level: str | None = None
) -> Alert:
    return Alert(
        id=f"{device}.1",
        episode_id=device,
        seq=0,
        device=DeviceRef(site="demo", kind=DeviceKind.SENSOR, id=device),
        kind=kind,
        rule="depth",
        phase=Phase.START,
        event_time=datetime(2026, 9, 14, 2, tzinfo=UTC),
        location=Location(lat=31.43, lon=119.48),
        confidence=confidence,
        level=level,
    )


@pytest.mark.parametrize(
    ("alerts", "expected"),
    [
        pytest.param([_alert("s1", 1.0, level="lane")], 3, id="one sensor at lane depth"),
        pytest.param(
            [_alert("s1", 1.0, level="lane"), _alert("s1", 1.0, level="closure")],
            1,
            id="deepest level wins",
        ),
        pytest.param(
            [_alert("s1", 1.0, level="lane")] * 3, 3, id="one device repeating is one source"
        ),
        pytest.param(
            [_alert(f"s{i}", 1.0, level="lane") for i in range(3)],
            2,
            id="three devices corroborate",
        ),
        pytest.param(
            [_alert("c1", 0.3, K.SMOKE), _alert("c2", 0.7, K.SMOKE)],
            1,
            id="highest confidence counts",
        ),
    ],
)
def test_priority_of_merged_alerts(alerts: list[Alert], expected: int) -> None:
    """Merged alerts give their deepest level, highest confidence and distinct devices."""
    assert priority_of_alerts(alerts) == expected


def test_priority_of_mixed_kinds_is_refused() -> None:
    """Alerts of different kinds are not one problem."""
    with pytest.raises(ValueError, match="share a kind"):
        priority_of_alerts([_alert("s1", 1.0), _alert("c1", 1.0, K.SMOKE)])
