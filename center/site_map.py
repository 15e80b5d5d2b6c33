"""What the console's map and filters need to know about the site: its grid, boundary
GeoJSON, tile server, departments and categories — all from config, nothing from the
database.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from citywatch.config import CitywatchConfig
from citywatch.config.center import Tiles
from citywatch.config.site import District


class BoundaryError(RuntimeError):
    """The site's boundary GeoJSON is missing or not a FeatureCollection (HTTP 500: the
    config is wrong, not the request)."""


class LatLon(BaseModel):
    lat: float
    lon: float


class DepartmentView(BaseModel):
    id: str
    name: str


class CategoryView(BaseModel):
    kind: str
    code: str
    name: str
    department: str


class SiteView(BaseModel):
    id: str
    name: str
    timezone: str
    center: LatLon
    boundary: dict[str, Any] | None
    """A GeoJSON FeatureCollection of the grid, or None when the site has none."""
    tiles: Tiles | None
    districts: list[District]
    departments: list[DepartmentView]
    categories: list[CategoryView]


def boundary_path(config: CitywatchConfig, config_dir: Path | None) -> Path | None:
    """Where ``site.boundary_geojson`` points (relative to the site's config file)."""
    name = config.site.boundary_geojson
    if name is None:
        return None
    if name.is_absolute():
        return name
    if config_dir is None:
        raise BoundaryError(
            f"site.boundary_geojson {str(name)!r} is relative but the center was started"
            " without the config's folder; give an absolute path"
        )
    return config_dir / name


def check_feature_collection(data: Any, source: str) -> dict[str, Any]:
    """``data`` if it is a GeoJSON FeatureCollection of Features with geometries."""
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        raise BoundaryError(f"{source} is not a GeoJSON FeatureCollection")
    features = data.get("features")
    if not isinstance(features, list):
        raise BoundaryError(f"{source}: a FeatureCollection needs a 'features' list")
    for index, feature in enumerate(features):
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            raise BoundaryError(f"{source}: features[{index}] is not a GeoJSON Feature")
        geometry = feature.get("geometry")
        if geometry is not None and not (isinstance(geometry, dict) and "type" in geometry):
            raise BoundaryError(f"{source}: features[{index}] has a malformed geometry")
    return data


def load_boundary(path: Path) -> dict[str, Any]:
    """The boundary FeatureCollection in ``path``, with an error an operator can act on."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BoundaryError(
            f"site.boundary_geojson: {path} does not exist (it is relative to the site's"
            " config file)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BoundaryError(f"site.boundary_geojson: cannot read {path}: {error}") from None
    return check_feature_collection(data, str(path))


def site_view(config: CitywatchConfig, config_dir: Path | None) -> SiteView:
    """The site as the console needs it (reads the boundary file: call it off the loop)."""
    site = config.site
    path = boundary_path(config, config_dir)
    return SiteView(
        id=site.id,
        name=site.name,
        timezone=site.timezone,
        center=LatLon(lat=site.center.lat, lon=site.center.lon),
        boundary=None if path is None else load_boundary(path),
        tiles=config.center.tiles,
        districts=list(site.districts),
        departments=[DepartmentView(id=d.id, name=d.name) for d in config.workflow.departments],
        categories=[
            CategoryView(kind=c.kind.value, code=c.code, name=c.name, department=c.department)
            for c in config.workflow.categories
        ],
    )
