"""The root of the config tree: one model for everything operators edit."""

from __future__ import annotations

from citywatch.config.base import ConfigModel
from citywatch.config.center import CenterConfig
from citywatch.config.devices import Devices
from citywatch.config.intake import Intake
from citywatch.config.sensor import LevelPolicy, SensorConfig
from citywatch.config.services import Services
from citywatch.config.site import Placement, Site
from citywatch.config.workflow import Workflow


class Waterlogging(ConfigModel):
    level_policy: LevelPolicy = LevelPolicy()


class CitywatchConfig(ConfigModel):
    """A whole site: grid, devices, detection rules, workflow and where the services are."""

    site: Site
    devices: Devices = Devices()
    waterlogging: Waterlogging = Waterlogging()
    workflow: Workflow
    services: Services = Services()
    center: CenterConfig = CenterConfig()
    intake: Intake = Intake()

    def level_policy(self, sensor: SensorConfig) -> LevelPolicy:
        """The sensor's own level policy, or the site's."""
        return sensor.level_policy or self.waterlogging.level_policy

    def gateway_devices(self, gateway_id: str) -> list[tuple[str, str]]:
        """(device kind, device id) of every device behind a gateway."""
        return [(kind, d.id) for kind, d in self.devices.all() if d.gateway == gateway_id]

    def placements(self) -> dict[tuple[str, str], Placement]:
        """(device kind, device id) → where it stands in the grid and on the map."""
        return {(kind, d.id): d.placement for kind, d in self.devices.all()}
