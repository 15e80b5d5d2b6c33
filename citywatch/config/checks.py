"""Cross-section checks: rules that span sections and so cannot live on one model.

Each check is a small named function returning the problems it finds with the path of the
offending field, so the loader can point the operator at the YAML line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from citywatch.config.problem_wording import did_you_mean
from citywatch.config.tree import CitywatchConfig
from citywatch.contracts.messages import AlertKind

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class ConfigIssue:
    path: Path
    message: str


def _all_devices(config: CitywatchConfig) -> Iterator[tuple[str, int, object]]:
    for section in ("cameras", "sensors", "docks"):
        for index, device in enumerate(getattr(config.devices, section)):
            yield section, index, device


def verify_device_ids_unique(config: CitywatchConfig) -> list[ConfigIssue]:
    """Device and gateway ids are topic levels and keys: one id, one thing."""
    seen: dict[str, Path] = {}
    issues = []
    for index, gateway in enumerate(config.devices.gateways):
        path: Path = ("devices", "gateways", index, "id")
        if gateway.id in seen:
            issues.append(
                ConfigIssue(
                    path, f"id {gateway.id!r} is already used at {_dotted(seen[gateway.id])}"
                )
            )
        seen.setdefault(gateway.id, path)
    for section, index, device in _all_devices(config):
        path = ("devices", section, index, "id")
        device_id = device.id  # type: ignore[attr-defined]
        if device_id in seen:
            issues.append(
                ConfigIssue(path, f"id {device_id!r} is already used at {_dotted(seen[device_id])}")
            )
        seen.setdefault(device_id, path)
    return issues


def verify_devices_reference_known_gateways(config: CitywatchConfig) -> list[ConfigIssue]:
    """Every device sits behind a declared gateway of its own kind."""
    gateways = {g.id: g.kind for g in config.devices.gateways}
    issues = []
    for section, index, device in _all_devices(config):
        gateway = device.gateway  # type: ignore[attr-defined]
        kind = section.removesuffix("s")
        path: Path = ("devices", section, index, "gateway")
        if gateway not in gateways:
            issues.append(
                ConfigIssue(
                    path,
                    f"unknown gateway {gateway!r} (declared: {', '.join(sorted(gateways))})"
                    f"{did_you_mean(gateway, sorted(gateways))}",
                )
            )
        elif gateways[gateway] != kind:
            issues.append(
                ConfigIssue(
                    path,
                    f"gateway {gateway!r} is a {gateways[gateway]} gateway, not a {kind} gateway",
                )
            )
    return issues


def verify_placements_in_grid(config: CitywatchConfig) -> list[ConfigIssue]:
    """A device's district, street and community exist and nest (escalation climbs them)."""
    streets = {
        d.id: {s.id: {c.id for c in s.communities} for s in d.streets}
        for d in config.site.districts
    }
    issues = []
    for section, index, device in _all_devices(config):
        place = device.placement  # type: ignore[attr-defined]
        base: Path = ("devices", section, index, "placement")
        if place.district not in streets:
            issues.append(
                ConfigIssue(
                    (*base, "district"),
                    f"unknown district {place.district!r} (known: {', '.join(sorted(streets))})"
                    f"{did_you_mean(place.district, sorted(streets))}",
                )
            )
            continue
        if place.street is not None and place.street not in streets[place.district]:
            issues.append(
                ConfigIssue(
                    (*base, "street"),
                    f"street {place.street!r} is not in district {place.district!r}"
                    f"{did_you_mean(place.street, sorted(streets[place.district]))}",
                )
            )
            continue
        if place.community is not None and (
            place.street is None or place.community not in streets[place.district][place.street]
        ):
            issues.append(
                ConfigIssue(
                    (*base, "community"),
                    f"community {place.community!r} is not in street {place.street!r}",
                )
            )
    return issues


def verify_categories_reference_departments_and_tiers(config: CitywatchConfig) -> list[ConfigIssue]:
    """A category's owning department and SLA tier are declared."""
    departments = {d.id for d in config.workflow.departments}
    tiers = {t.id for t in config.workflow.sla.tiers}
    issues = []
    for index, category in enumerate(config.workflow.categories):
        base: Path = ("workflow", "categories", index)
        if category.department not in departments:
            issues.append(
                ConfigIssue(
                    (*base, "department"),
                    f"unknown department {category.department!r}"
                    f" (declared: {', '.join(sorted(departments))})"
                    f"{did_you_mean(category.department, sorted(departments))}",
                )
            )
        if category.sla not in tiers:
            issues.append(
                ConfigIssue(
                    (*base, "sla"),
                    f"unknown SLA tier {category.sla!r} (declared: {', '.join(sorted(tiers))})"
                    f"{did_you_mean(category.sla, sorted(tiers))}",
                )
            )
    return issues


def verify_every_produced_kind_has_a_category(config: CitywatchConfig) -> list[ConfigIssue]:
    """Each alert kind the configured devices can raise files under exactly one category."""
    produced: set[AlertKind] = set()
    if config.devices.sensors:
        produced |= {AlertKind.WATERLOGGING, AlertKind.DEVICE_FAULT}
    for camera in config.devices.cameras:
        produced |= {AlertKind(rule.type) for rule in camera.rules}
    kinds = [c.kind for c in config.workflow.categories]
    issues = [
        ConfigIssue(
            ("workflow", "categories"),
            f"alerts of kind {kind.value!r} are produced but no category receives them",
        )
        for kind in sorted(produced - set(kinds))
    ]
    for index, kind in enumerate(kinds):
        if kinds.index(kind) != index:
            issues.append(
                ConfigIssue(
                    ("workflow", "categories", index, "kind"),
                    f"kind {kind.value!r} already has a category",
                )
            )
    return issues


def verify_gateway_tls_needs_a_tls_broker(config: CitywatchConfig) -> list[ConfigIssue]:
    """A gateway ``tls:`` block with a plain ``mqtt://`` broker is a contradiction, refused
    rather than silently ignored (``mqtts://`` or ``services.mqtt.tls: embedded`` fits)."""
    if config.services.mqtt.uses_tls:
        return []
    return [
        ConfigIssue(
            ("devices", "gateways", index, "tls"),
            f"gateway {gateway.id!r} has TLS settings but services.mqtt.url"
            f" {config.services.mqtt.url!r} is plain MQTT: use an mqtts:// url (or"
            " services.mqtt.tls: embedded), or remove the tls block",
        )
        for index, gateway in enumerate(config.devices.gateways)
        if gateway.tls is not None
    ]


def verify_refreshes_come_within_the_dedup_window(config: CitywatchConfig) -> list[ConfigIssue]:
    """A held condition is refreshed (``update_every``) more often than its kind's dedup
    ``window``: otherwise a flood or a parked car that lasts goes quiet for longer than the
    window and its work order ages out while the problem is still there."""
    dedup = config.workflow.dedup
    issues = []

    def check(path: Path, every: object, kinds: str | tuple[str, ...], what: str) -> None:
        """One issue per field, against the tightest window of the kinds it refreshes."""
        windows = [
            (policy.window, kind)
            for kind in ((kinds,) if isinstance(kinds, str) else kinds)
            if (policy := dedup.get(AlertKind(kind))) is not None
        ]
        if not windows or every is None:
            return
        window, kind = min(windows)
        if every >= window:  # type: ignore[operator]
            issues.append(ConfigIssue(path, (
                f"{what} update_every ({every}) is not shorter than the {kind} dedup window"
                f" ({window}): the work order would age out while the condition holds;"
                " refresh more often or widen workflow.dedup window"
            )))  # fmt: skip

    refreshed_by_sensors = ("waterlogging", "device_fault")  # floods and faults alike
    site_policy = config.waterlogging.level_policy
    check(("waterlogging", "level_policy", "update_every"), site_policy.update_every,
          refreshed_by_sensors, "the site's level policy")  # fmt: skip
    for index, sensor in enumerate(config.devices.sensors):
        if sensor.level_policy is not None:
            check(("devices", "sensors", index, "level_policy", "update_every"),
                  sensor.level_policy.update_every, refreshed_by_sensors, f"sensor {sensor.id!r}'s")  # fmt: skip
    for index, camera in enumerate(config.devices.cameras):
        for number, rule in enumerate(camera.rules):
            check(("devices", "cameras", index, "rules", number, "update_every"),
                  rule.update_every, rule.type, f"camera {camera.id!r} rule {rule.name!r}")  # fmt: skip
    return issues


CHECKS: tuple[Callable[[CitywatchConfig], list[ConfigIssue]], ...] = (
    verify_gateway_tls_needs_a_tls_broker,
    verify_device_ids_unique,
    verify_devices_reference_known_gateways,
    verify_placements_in_grid,
    verify_categories_reference_departments_and_tiers,
    verify_every_produced_kind_has_a_category,
    verify_refreshes_come_within_the_dedup_window,
)


def run_checks(config: CitywatchConfig) -> list[ConfigIssue]:
    return [issue for check in CHECKS for issue in check(config)]


def _dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out
