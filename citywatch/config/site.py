"""The site and its grid: districts (区) → streets (街道) → communities (社区/村社).

The grid is what escalation climbs (community → street → district) and what work orders,
devices and KPIs are filed under.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from citywatch.config.base import ConfigModel, GeoPoint, Identifier


class Community(ConfigModel):
    id: Identifier
    name: str = Field(title="Name", description="display name, e.g. 人民社区")


class Street(ConfigModel):
    id: Identifier
    name: str = Field(description="display name, e.g. 城东街道")
    communities: tuple[Community, ...] = ()


class District(ConfigModel):
    id: Identifier
    name: str = Field(description="display name, e.g. 示范区")
    streets: tuple[Street, ...] = ()


class Site(ConfigModel):
    """One deployment: a city or district operations center."""

    id: Identifier = Field(description="site id; first level of every MQTT topic")
    name: str
    timezone: str = Field(
        default="Asia/Shanghai",
        description="local zone for schedules, working hours and display; storage is UTC",
    )
    center: GeoPoint = Field(description="map centre of the site")
    boundary_geojson: Path | None = Field(
        default=None, description="GeoJSON of the grid, relative to this file, for the console map"
    )
    districts: tuple[District, ...] = Field(min_length=1)

    def grid_units(self) -> dict[str, str]:
        """Every district, street and community id mapped to its level name."""
        units: dict[str, str] = {}
        for district in self.districts:
            units[district.id] = "district"
            for street in district.streets:
                units[street.id] = "street"
                for community in street.communities:
                    units[community.id] = "community"
        return units


class Placement(ConfigModel):
    """Where a device stands in the grid (for escalation and filing) and on the map."""

    district: Identifier
    street: Identifier | None = None
    community: Identifier | None = None
    position: GeoPoint | None = Field(default=None, description="WGS84 position of the device")
