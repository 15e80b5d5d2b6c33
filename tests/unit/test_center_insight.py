"""The command center's insight helpers without a database: rate maths and the summary,
which evidence paths may be served, content types, depth buckets and levels, the site's
boundary GeoJSON and the demo grid."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import shapely.geometry

from citywatch.center import devices, evidence_files, kpis, site_map
from citywatch.center.evidence_files import (
    EvidenceCorrupt,
    EvidenceMissing,
    EvidenceRefused,
    EvidenceRemote,
    LocalFile,
)
from citywatch.config import CitywatchConfig

REPO = Path(__file__).resolve().parents[2]

# -- rates -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [(0, 0, None), (3, 0, None), (0, 4, 0.0), (1, 4, 0.25), (4, 4, 1.0)],
)
def test_rate_is_none_without_a_denominator(
    numerator: int, denominator: int, expected: float | None
) -> None:
    """No data is not 0 %."""
    assert kpis.rate(numerator, denominator) == expected


def test_counts_give_the_documented_rates() -> None:
    """Each rate is its documented ratio; satisfaction is verified / all verifications."""
    counts = kpis.KpiCounts(
        total=10, dispatched=8, responded=6, handled=4, on_time=3, closed=2,
        false_positive=1, verified=3, rework=1,
    )  # fmt: skip
    assert counts.response_rate == 6 / 8
    assert counts.handling_rate == 4 / 8
    assert counts.satisfaction_rate == 3 / 4
    assert counts.closure_rate == 2 / 10
    assert counts.on_time_rate == 3 / 4
    empty = kpis.KpiCounts()
    assert [empty.response_rate, empty.handling_rate, empty.satisfaction_rate,
            empty.closure_rate, empty.on_time_rate] == [None] * 5  # fmt: skip


def test_totals_add_counts_and_recompute_rates() -> None:
    """Totals are sums of counts, with rates of the sums (not means of the rates)."""
    a = kpis.KpiCounts(total=1, dispatched=1, responded=1)
    b = kpis.KpiCounts(total=3, dispatched=3, responded=0)
    total = kpis.total_of([a, b])
    assert (total.total, total.dispatched, total.responded) == (4, 4, 1)
    assert total.response_rate == 1 / 4
    row = kpis.KpiRow.of("all", "all", total)
    assert row.response_rate == 1 / 4 and row.total == 4


def test_summary_counts_only_open_orders_as_open_overdue_or_escalated() -> None:
    """Closed and false-positive orders appear by state only."""
    summary = kpis.summarize(
        [
            kpis.StateCount("filed", None, orders=5, past_due=2),
            kpis.StateCount("signed", "street", orders=2, past_due=1),
            kpis.StateCount("closed", "district", orders=7, past_due=7),
            kpis.StateCount("false_positive", None, orders=1, past_due=1),
        ]
    )
    assert (summary.open, summary.overdue, summary.escalated) == (7, 3, 2)
    assert summary.by_state["filed"] == 5 and summary.by_state["closed"] == 7
    assert summary.by_state["in_progress"] == 0
    assert summary.by_escalation_level == {"community": 0, "street": 2, "district": 0}


# -- evidence paths -----------------------------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    evidence = tmp_path / "evidence"
    (evidence / "cam-1").mkdir(parents=True)
    (evidence / "cam-1" / "snap.jpg").write_bytes(b"jpeg")
    (tmp_path / "evidence-other").mkdir()
    (tmp_path / "evidence-other" / "snap.jpg").write_bytes(b"not ours")
    (tmp_path / "secret.txt").write_text("secret")
    return evidence


def test_file_inside_a_root_is_served_by_its_real_path(root: Path) -> None:
    assert evidence_files.locate((root / "cam-1" / "snap.jpg").as_uri(), [root]) == LocalFile(
        (root / "cam-1" / "snap.jpg").resolve()
    )


def test_symlink_inside_the_root_to_a_file_inside_it_is_allowed(root: Path) -> None:
    """Gateways may link evidence within the root (a clip reused for two alerts)."""
    (root / "alias.jpg").symlink_to(root / "cam-1" / "snap.jpg")
    located = evidence_files.locate((root / "alias.jpg").as_uri(), [root])
    assert located == LocalFile((root / "cam-1" / "snap.jpg").resolve())


@pytest.mark.parametrize(
    "uri",
    [
        "file://{root}/../secret.txt",
        "file://{root}/cam-1/../../secret.txt",
        "file://{root}/%2e%2e/secret.txt",
        "file://{root}/../evidence-other/snap.jpg",  # a sibling whose name starts the same
        "file://{root}/link-out",
        "file:///etc/passwd",
        "file://{root}/../no-such-file",  # outside and absent: still 403, nothing leaks
    ],
)
def test_paths_leading_out_of_the_roots_are_refused(root: Path, uri: str) -> None:
    (root / "link-out").symlink_to(root.parent / "secret.txt")
    with pytest.raises(EvidenceRefused, match="outside the evidence roots"):
        evidence_files.locate(uri.format(root=root), [root])


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("file://gateway-7/evidence/snap.jpg", "names host"),
        ("file:relative/snap.jpg", "not an absolute file path"),
    ],
)
def test_remote_and_relative_file_uris_are_refused(root: Path, uri: str, message: str) -> None:
    with pytest.raises(EvidenceRefused, match=message):
        evidence_files.locate(uri, [root])


def test_no_roots_configured_refuses_every_file(root: Path) -> None:
    with pytest.raises(EvidenceRefused, match="no evidence roots are configured"):
        evidence_files.locate((root / "cam-1" / "snap.jpg").as_uri(), [])


def test_missing_file_inside_a_root_and_unknown_scheme_are_missing(root: Path) -> None:
    with pytest.raises(EvidenceMissing, match="is not there"):
        evidence_files.locate((root / "gone.jpg").as_uri(), [root])
    with pytest.raises(EvidenceMissing, match="is not there"):
        evidence_files.locate((root / "cam-1").as_uri(), [root])  # a folder is not a file
    with pytest.raises(EvidenceMissing, match="s3 scheme"):
        evidence_files.locate("s3://bucket/snap.jpg", [root])


def test_http_evidence_is_never_redirected_to(root: Path) -> None:
    """A device-supplied http(s) address is refused as missing, never handed to a browser."""
    with pytest.raises(EvidenceRemote, match="does not send browsers to"):
        evidence_files.locate("https://objects.example/e/snap.jpg?sig=1", [root])


def test_sha256_mismatch_is_corrupt_and_a_match_passes(root: Path) -> None:
    path = root / "cam-1" / "snap.jpg"
    evidence_files.check_sha256(path, hashlib.sha256(b"jpeg").hexdigest())
    evidence_files.check_sha256(path, None)
    with pytest.raises(EvidenceCorrupt, match="does not match"):
        evidence_files.check_sha256(path, hashlib.sha256(b"other").hexdigest())


def test_rewritten_file_is_hashed_again(root: Path) -> None:
    """The digest cache is keyed by size and mtime, so a changed file is not trusted."""
    path = root / "cam-1" / "snap.jpg"
    evidence_files.check_sha256(path, hashlib.sha256(b"jpeg").hexdigest())
    path.write_bytes(b"tampered evidence")
    with pytest.raises(EvidenceCorrupt):
        evidence_files.check_sha256(path, hashlib.sha256(b"jpeg").hexdigest())


@pytest.mark.parametrize(
    ("declared", "name", "expected"),
    [
        ("image/jpeg", "a.bin", "image/jpeg"),
        ("video/mp4", "a.mp4", "video/mp4"),
        ("text/html", "a.html", "application/octet-stream"),
        ("image/svg+xml", "a.svg", "image/svg+xml"),
        (None, "a.png", "image/png"),
        ("application/octet-stream", "clip.mp4", "video/mp4"),
        ("application/octet-stream", "a.html", "application/octet-stream"),
        ("application/json; charset=utf-8", "s.json", "application/json"),
    ],
)
def test_content_type_serves_media_and_downloads_the_rest(
    declared: str | None, name: str, expected: str
) -> None:
    assert evidence_files.content_type(declared, Path(name)) == expected


def test_evidence_url_escapes_the_alert_id() -> None:
    """The lead's detail endpoint builds URLs with this; ids may hold ':' and '.'."""
    assert evidence_files.evidence_url("cam-1:al:42.0", "snapshot") == (
        "/api/v1/alerts/cam-1%3Aal%3A42.0/evidence/snapshot"
    )


# -- depth ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("span", "max_points", "width"),
    [
        (timedelta(hours=6), 2000, timedelta(seconds=10.8)),
        (timedelta(seconds=10), 2000, timedelta(milliseconds=5)),
        (timedelta(microseconds=10), 2000, timedelta(milliseconds=1)),
    ],
)
def test_bucket_width_caps_points(span: timedelta, max_points: int, width: timedelta) -> None:
    since = datetime(2026, 6, 1, tzinfo=UTC)
    assert devices.bucket_width(since, since + span, max_points) == width


def test_bucket_width_refuses_an_empty_range() -> None:
    since = datetime(2026, 6, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="must be after"):
        devices.bucket_width(since, since, 2000)


def test_sensor_levels_borrow_site_labels(demo_config: CitywatchConfig) -> None:
    """wl-underpass-01 lists its own levels without labels: the site's labels fill in;
    wl-hebin-02 has none of its own and gets the site's."""
    underpass = devices.sensor(demo_config, "wl-underpass-01")
    levels = devices.depth_levels(demo_config, underpass)
    assert [(level.name, level.depth_cm) for level in levels] == [
        ("lane", 15), ("underpass_closure", 25), ("closure", 40),
    ]  # fmt: skip
    assert levels[0].label == "单车道积水 one lane affected"
    hebin = devices.depth_levels(demo_config, devices.sensor(demo_config, "wl-hebin-02"))
    assert [level.name for level in hebin] == ["lane", "underpass_closure", "closure"]


def test_sensor_lookup_names_what_is_wrong(demo_config: CitywatchConfig) -> None:
    with pytest.raises(devices.UnknownDevice, match="no device 'x'"):
        devices.sensor(demo_config, "x")
    with pytest.raises(devices.UnknownDevice, match="is a dock"):
        devices.sensor(demo_config, "dock-chengxi-01")


# -- site ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "not a GeoJSON FeatureCollection"),
        ({"type": "Feature"}, "not a GeoJSON FeatureCollection"),
        ({"type": "FeatureCollection"}, "needs a 'features' list"),
        ({"type": "FeatureCollection", "features": [{"type": "Point"}]}, "features\\[0\\]"),
        ({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": 3}]},
         "malformed geometry"),
    ],
)  # fmt: skip
def test_boundary_must_be_a_feature_collection(data: object, message: str) -> None:
    with pytest.raises(site_map.BoundaryError, match=message):
        site_map.check_feature_collection(data, "grid.geojson")


def test_boundary_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(site_map.BoundaryError, match="does not exist"):
        site_map.load_boundary(tmp_path / "missing.geojson")
    bad = tmp_path / "bad.geojson"
    bad.write_text("{not json")
    with pytest.raises(site_map.BoundaryError, match=r"cannot read .*bad\.geojson"):
        site_map.load_boundary(bad)


def test_site_view_without_boundary_and_with_relative_boundary(
    demo_config: CitywatchConfig,
) -> None:
    site = demo_config.site.model_copy(update={"boundary_geojson": None})
    config = demo_config.model_copy(update={"site": site})
    assert site_map.site_view(config, REPO / "configs").boundary is None
    relative = config.model_copy(
        update={"site": site.model_copy(update={"boundary_geojson": Path("demo-district/grid.geojson")})}
    )  # fmt: skip
    view = site_map.site_view(relative, REPO / "configs")
    assert view.boundary is not None and len(view.boundary["features"]) == 3
    with pytest.raises(site_map.BoundaryError, match="without the config's folder"):
        site_map.site_view(relative, None)


def test_demo_grid_holds_every_device_in_its_community(demo_config: CitywatchConfig) -> None:
    """The demo's grid.geojson: one polygon per community, each device inside its own."""
    grid = json.loads((REPO / "configs" / "demo-district" / "grid.geojson").read_text())
    site_map.check_feature_collection(grid, "grid.geojson")
    polygons = {
        f["properties"]["id"]: shapely.geometry.shape(f["geometry"]) for f in grid["features"]
    }
    communities = {
        c.id for d in demo_config.site.districts for s in d.streets for c in s.communities
    }
    assert set(polygons) == communities
    assert all(polygon.is_valid for polygon in polygons.values())
    for _, device in demo_config.devices.all():
        position = device.placement.position
        assert position is not None and device.placement.community is not None
        point = shapely.geometry.Point(position.lon, position.lat)
        assert polygons[device.placement.community].contains(point), device.id
    names = {f["properties"]["id"]: f["properties"] for f in grid["features"]}
    assert names["c-xinhua"] == {"id": "c-xinhua", "name": "新华社区", "level": "community",
                                 "street": "s-chengxi", "district": "d-shifan"}  # fmt: skip
