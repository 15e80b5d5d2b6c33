"""The insight endpoints on the real database: evidence files (and the paths they must not
reach), devices with their state and telemetry, depth curves, KPIs on a hand-built set of
work orders, the open-order summary, and the site map."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.center.conftest import TOKENS, auth
from tests.center.seed import act_on, insert_alert, insert_telemetry, seed_order, set_device_state

pytestmark = pytest.mark.integration

CST = ZoneInfo("Asia/Shanghai")
JPEG = b"\xff\xd8\xff\xe0" + b"snapshot with boxes" + b"\x00" * 32
MP4 = b"\x00\x00\x00\x18ftypmp42" + b"\x01" * 64
VIEWER = auth("viewer")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/alerts/a.1/evidence/snapshot",
        "/api/v1/devices",
        "/api/v1/devices/wl-underpass-01/depth",
        "/api/v1/kpis",
        "/api/v1/kpis/summary",
        "/api/v1/site",
    ],
)
def test_every_insight_endpoint_needs_a_token(client, path: str) -> None:  # type: ignore[no-untyped-def]
    """No token, or an unknown one, is 401."""
    assert client.get(path).status_code == 401
    assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401


# -- evidence --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def evidence_root(center_settings) -> Path:  # type: ignore[no-untyped-def]
    root: Path = center_settings.evidence_roots[0]
    return root


def _alert_with(db, alert_id: str, evidence: list[dict]) -> None:  # type: ignore[no-untyped-def]
    insert_alert(
        db, alert_id=alert_id, device_id="cam-renmin-101", device_kind="camera",
        kind="illegal_parking", when=datetime.now(UTC), evidence=evidence,
    )  # fmt: skip
    db.commit()


def test_snapshot_is_served_with_its_type_and_checked_hash(client, db, evidence_root) -> None:  # type: ignore[no-untyped-def]
    """A snapshot inside the evidence root comes back as the image the gateway wrote."""
    path = evidence_root / "cam-renmin-101" / "snap-1.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(JPEG)
    ref = {"kind": "snapshot", "uri": path.as_uri(), "content_type": "image/jpeg",
           "sha256": hashlib.sha256(JPEG).hexdigest()}  # fmt: skip
    _alert_with(db, "ev-ok.a0.0", [ref])

    response = client.get("/api/v1/alerts/ev-ok.a0.0/evidence/snapshot", headers=VIEWER)
    assert response.status_code == 200
    assert response.content == JPEG
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["x-content-type-options"] == "nosniff"
    # an <img> cannot send headers: the token may ride in the query
    token = TOKENS["viewer"]
    by_query = client.get(f"/api/v1/alerts/ev-ok.a0.0/evidence/snapshot?access_token={token}")
    assert by_query.status_code == 200


def test_clip_announced_later_is_served_from_the_evidence_table(client, db, evidence_root) -> None:  # type: ignore[no-untyped-def]
    """A clip notice stored after its alert (evidence table) is found by alert id and kind."""
    path = evidence_root / "clip-1.mp4"
    path.write_bytes(MP4)
    _alert_with(db, "ev-clip.a0.0", [])
    db.execute(
        """INSERT INTO evidence (id, alert_id, device_id, kind, uri, content_type, sha256,
               event_time) VALUES ('n1', 'ev-clip.a0.0', 'cam-renmin-101', 'clip', %s,
               'video/mp4', NULL, now())""",
        (path.as_uri(),),
    )
    db.commit()
    response = client.get("/api/v1/alerts/ev-clip.a0.0/evidence/clip", headers=VIEWER)
    assert response.status_code == 200
    assert response.content == MP4
    assert response.headers["content-type"] == "video/mp4"


def test_evidence_outside_the_roots_is_refused(client, db, evidence_root, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`..` and symlinks that lead out of the evidence roots are 403, never the file."""
    secret = tmp_path / "secret.txt"
    secret.write_text("not evidence")
    link = evidence_root / "innocent.jpg"
    link.symlink_to(secret)
    traversal = f"file://{evidence_root}/../{secret.relative_to(evidence_root.parent)}"
    for alert_id, uri in (
        ("ev-dotdot.a0.0", traversal),
        ("ev-link.a0.0", link.as_uri()),
        ("ev-etc.a0.0", "file:///etc/passwd"),
    ):
        _alert_with(db, alert_id, [{"kind": "snapshot", "uri": uri, "content_type": "image/jpeg"}])
        response = client.get(f"/api/v1/alerts/{alert_id}/evidence/snapshot", headers=VIEWER)
        assert response.status_code == 403, uri
        assert "outside the evidence roots" in response.json()["detail"]
        assert "not evidence" not in response.text


def test_missing_alert_kind_or_file_is_404_with_a_reason(client, db, evidence_root) -> None:  # type: ignore[no-untyped-def]
    """Unknown alert, absent kind and a rotated-out file each say which it is."""
    gone = evidence_root / "rotated-out.jpg"
    _alert_with(db, "ev-gone.a0.0", [{"kind": "snapshot", "uri": gone.as_uri()}])

    response = client.get("/api/v1/alerts/no-such-alert/evidence/snapshot", headers=VIEWER)
    assert response.status_code == 404
    assert "no alert 'no-such-alert'" in response.json()["detail"]
    response = client.get("/api/v1/alerts/ev-gone.a0.0/evidence/crop", headers=VIEWER)
    assert response.status_code == 404
    assert "has no crop evidence" in response.json()["detail"]
    response = client.get("/api/v1/alerts/ev-gone.a0.0/evidence/snapshot", headers=VIEWER)
    assert response.status_code == 404
    assert "is not there" in response.json()["detail"]
    assert client.get("/api/v1/alerts/x/evidence/selfie", headers=VIEWER).status_code == 422


def test_changed_evidence_file_is_409(client, db, evidence_root) -> None:  # type: ignore[no-untyped-def]
    """A file whose SHA-256 differs from the announced one is not served as evidence."""
    path = evidence_root / "crop-1.jpg"
    path.write_bytes(JPEG)
    ref = {"kind": "crop", "uri": path.as_uri(), "content_type": "image/jpeg",
           "sha256": hashlib.sha256(b"something else").hexdigest()}  # fmt: skip
    _alert_with(db, "ev-bad.a0.0", [ref])
    response = client.get("/api/v1/alerts/ev-bad.a0.0/evidence/crop", headers=VIEWER)
    assert response.status_code == 409
    assert "SHA-256" in response.json()["detail"]


def test_evidence_at_an_outside_address_is_404_never_a_redirect(client, db) -> None:  # type: ignore[no-untyped-def]
    """An http(s) URI a device set is not redirected to (no open redirect): 404 saying why."""
    for n, url in enumerate(("https://evil.example/phish", "http://169.254.169.254/latest")):
        _alert_with(db, f"ev-remote-{n}.a0.0", [{"kind": "snapshot", "uri": url}])
        response = client.get(
            f"/api/v1/alerts/ev-remote-{n}.a0.0/evidence/snapshot", headers=VIEWER,
            follow_redirects=False,
        )  # fmt: skip
        assert response.status_code == 404
        assert "location" not in response.headers
        assert "does not send browsers to" in response.json()["detail"]


# -- devices and depth -----------------------------------------------------------------------


def test_devices_join_registry_state_and_latest_telemetry(client, db) -> None:  # type: ignore[no-untyped-def]
    """Online/offline comes from the devices table, metrics from the newest telemetry row."""
    now = datetime.now(UTC)
    set_device_state(db, "cam-renmin-101", "camera", "online", now)
    set_device_state(db, "wl-hebin-02", "sensor", "offline", now - timedelta(minutes=3))
    set_device_state(db, "cam-stray-9", "camera", "online", now)
    insert_telemetry(db, "cam-renmin-101", [
        (now - timedelta(seconds=20), {"fps": 3.0, "inference_ms": 40.0, "pipeline_ms": 55.0}),
        (now - timedelta(seconds=5), {"fps": 3.9, "inference_ms": 31.5, "pipeline_ms": 48.2,
                                      "last_frame_age_s": 0.2}),
    ])  # fmt: skip

    response = client.get("/api/v1/devices", headers=VIEWER)
    assert response.status_code == 200
    devices = {d["id"]: d for d in response.json()}
    camera = devices["cam-renmin-101"]
    assert camera["state"] == "online"
    assert camera["kind"] == "camera"
    assert camera["gateway"] == "gw-cam-renmin"
    assert camera["community"] == "c-renmin"
    assert (camera["lat"], camera["lon"]) == (31.4309, 119.4815)
    assert camera["metrics"] == {
        "fps": 3.9, "inference_ms": 31.5, "pipeline_ms": 48.2, "last_frame_age_s": 0.2,
    }  # fmt: skip
    assert datetime.fromisoformat(camera["metrics_at"]) == (now - timedelta(seconds=5))
    assert devices["wl-hebin-02"]["state"] == "offline"
    assert devices["wl-hebin-02"]["name"] == "河滨路低洼点 Hebin Rd low point"
    silent = devices["dock-chengxi-01"]
    assert (silent["state"], silent["last_seen"], silent["metrics"]) == (None, None, {})
    assert devices["cam-stray-9"]["in_config"] is False
    assert len(devices) == 7 + 4 + 1  # devices, their gateways, the unregistered camera


def test_depth_curve_is_downsampled_keeping_peaks_and_has_levels(client, db) -> None:  # type: ignore[no-untyped-def]
    """5,000 readings come back as ≤ 2,000 points, in time order, with the peak kept."""
    t0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
    readings = [(t0 + timedelta(seconds=i), {"depth_cm": round(10 + (i % 100) / 10, 1),
                 "distance_mm": 2000.0}) for i in range(5000)]  # fmt: skip
    readings[3333] = (readings[3333][0], {"depth_cm": 33.0})
    insert_telemetry(db, "wl-underpass-01", readings)
    insert_telemetry(db, "wl-underpass-01", [(t0 + timedelta(seconds=2.5), {"battery_pct": 80.0})])
    window = {"since": t0.isoformat(), "until": (t0 + timedelta(seconds=5000)).isoformat()}

    response = client.get("/api/v1/devices/wl-underpass-01/depth", params=window, headers=VIEWER)
    assert response.status_code == 200
    body = response.json()
    assert body["device_id"] == "wl-underpass-01"
    assert body["unit"] == "cm"
    points = body["points"]
    assert 1000 < len(points) <= 2000
    times = [datetime.fromisoformat(t) for t, _ in points]
    assert times == sorted(times) and times[0] == t0
    assert max(depth for _, depth in points) == 33.0
    assert body["levels"] == [
        {"name": "lane", "depth_cm": 15.0, "label": "单车道积水 one lane affected"},
        {"name": "underpass_closure", "depth_cm": 25.0, "label": "下穿通道封闭 close underpasses"},
        {"name": "closure", "depth_cm": 40.0, "label": "道路封闭 close the road"},
    ]
    few = client.get(
        "/api/v1/devices/wl-underpass-01/depth", params=window | {"max_points": 10}, headers=VIEWER
    ).json()["points"]
    assert len(few) == 10
    assert max(depth for _, depth in few) == 33.0


def test_sparse_depth_readings_come_through_unchanged_and_default_to_six_hours(client, db) -> None:  # type: ignore[no-untyped-def]
    """Fewer readings than buckets are returned as they are; old ones fall out of the default."""
    now = datetime.now(UTC).replace(microsecond=0)
    insert_telemetry(db, "wl-xinhua-03", [
        (now - timedelta(hours=7), {"depth_cm": 9.0}),
        (now - timedelta(hours=2), {"depth_cm": 1.5}),
        (now - timedelta(minutes=10), {"depth_cm": 2.25}),
    ])  # fmt: skip
    body = client.get("/api/v1/devices/wl-xinhua-03/depth", headers=VIEWER).json()
    assert [(datetime.fromisoformat(t), d) for t, d in body["points"]] == [
        (now - timedelta(hours=2), 1.5),
        (now - timedelta(minutes=10), 2.25),
    ]
    assert [level["name"] for level in body["levels"]] == ["lane", "underpass_closure", "closure"]


def test_depth_of_unknown_or_non_sensor_device_is_404(client) -> None:  # type: ignore[no-untyped-def]
    """Only registry sensors have a depth curve; a reversed range is 422."""
    response = client.get("/api/v1/devices/nope/depth", headers=VIEWER)
    assert response.status_code == 404
    assert "no device 'nope'" in response.json()["detail"]
    response = client.get("/api/v1/devices/cam-renmin-101/depth", headers=VIEWER)
    assert response.status_code == 404
    assert "not a waterlogging sensor" in response.json()["detail"]
    reversed_range = {"since": "2026-06-02T00:00:00Z", "until": "2026-06-01T00:00:00Z"}
    response = client.get(
        "/api/v1/devices/wl-underpass-01/depth", params=reversed_range, headers=VIEWER
    )
    assert response.status_code == 422


# -- KPIs -------------------------------------------------------------------------------------


def _local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=CST)


@pytest.fixture(scope="module")
def kpi_orders(center_db, demo_config):  # type: ignore[no-untyped-def]
    """Five orders opened on 2 and 3 March 2026 (site time) and one after, each taken through
    a known part of the loop (see the expected figures in the tests)."""
    import psycopg

    with psycopg.connect(center_db) as db:

        def order(order_id: str, kind: str, opened: datetime):  # type: ignore[no-untyped-def]
            return seed_order(db, demo_config, kind=kind, opened_at=opened, order_id=order_id)

        def run(o, *steps: tuple[str, datetime, dict]) -> None:  # type: ignore[no-untyped-def]
            for action, when, args in steps:
                act_on(db, o, action, time=when, **args)

        um = {"department": "urban-mgmt"}
        # A: the whole loop, resolved well before its 1-day limit, closed.
        a = order("kpi-a", "illegal_parking", _local(2, 10))
        run(a, ("dispatch", _local(2, 10, 5), um), ("sign", _local(2, 10, 10), {}),
            ("resolve", _local(2, 11), {"note": "towed"}),
            ("verify", _local(2, 11, 30), {"passed": True, "note": "gone"}),
            ("close", _local(2, 12), {}))  # fmt: skip
        # B: rework once, then resolved a day late; verified, not closed.
        b = order("kpi-b", "illegal_parking", _local(2, 11))
        run(b, ("dispatch", _local(2, 11, 5), um), ("sign", _local(2, 11, 10), {}),
            ("resolve", _local(2, 12), {"note": "warned"}),
            ("verify", _local(2, 12, 30), {"passed": False, "note": "still there"}),
            ("start", _local(2, 13), {}), ("resolve", _local(4, 9), {"note": "towed"}),
            ("verify", _local(4, 10), {"passed": True, "note": "gone"}))  # fmt: skip
        # C: dispatched, never signed; opened 07:00 site time = 23:00 UTC the day before.
        c = order("kpi-c", "street_vending", _local(3, 7))
        run(c, ("dispatch", _local(3, 7, 10), um))
        # D: a false alarm.
        d = order("kpi-d", "illegal_parking", _local(3, 10))
        run(d, ("mark_false_positive", _local(3, 10, 5), {"reason": "shadow"}))
        # E: waterlogging, drained within its 30 minutes; resolved, not yet verified.
        e = order("kpi-e", "waterlogging", _local(2, 20))
        run(e, ("dispatch", _local(2, 20, 1), {"department": "drainage"}),
            ("sign", _local(2, 20, 2), {}), ("resolve", _local(2, 20, 20), {"note": "pumped"}))  # fmt: skip
        # F: opened after the range.
        order("kpi-f", "illegal_parking", _local(4, 0))
    return {"since": _local(2, 0).isoformat(), "until": _local(4, 0).isoformat()}


def test_kpis_by_department_match_the_hand_counted_set(client, kpi_orders) -> None:  # type: ignore[no-untyped-def]
    """urban-mgmt: A, B, C, D; drainage: E. Rates are the documented ratios; 0/0 is null."""
    response = client.get("/api/v1/kpis", params=kpi_orders | {"by": "department"}, headers=VIEWER)
    assert response.status_code == 200
    body = response.json()
    assert body["by"] == "department"
    assert body["timezone"] == "Asia/Shanghai"
    assert datetime.fromisoformat(body["since"]) == _local(2, 0)
    rows = {row["key"]: row for row in body["rows"]}
    assert set(rows) == {"urban-mgmt", "drainage"}
    um = rows["urban-mgmt"]
    assert um["label"] == "城管执法局 urban management"
    assert {k: um[k] for k in ("total", "dispatched", "responded", "handled", "on_time",
                               "closed", "false_positive", "verified", "rework")} == {
        "total": 4, "dispatched": 3, "responded": 2, "handled": 2, "on_time": 1,
        "closed": 1, "false_positive": 1, "verified": 2, "rework": 1,
    }  # fmt: skip
    assert um["response_rate"] == pytest.approx(2 / 3)  # A, B signed of A, B, C dispatched
    assert um["handling_rate"] == pytest.approx(2 / 3)  # A, B handled
    assert um["satisfaction_rate"] == pytest.approx(2 / 3)  # 2 passed of 3 verifications
    assert um["closure_rate"] == pytest.approx(1 / 4)  # A closed of 4
    assert um["on_time_rate"] == pytest.approx(1 / 2)  # A on time, B a day late
    drainage = rows["drainage"]
    assert (drainage["total"], drainage["handled"], drainage["on_time"]) == (1, 1, 1)
    assert drainage["satisfaction_rate"] is None  # never verified: no data, not 0 %
    assert drainage["closure_rate"] == 0.0
    assert drainage["on_time_rate"] == 1.0
    totals = body["totals"]
    assert (totals["key"], totals["total"], totals["dispatched"], totals["handled"]) == (
        "all", 5, 4, 3,
    )  # fmt: skip
    assert totals["response_rate"] == pytest.approx(3 / 4)
    assert totals["on_time_rate"] == pytest.approx(2 / 3)


def test_kpis_count_recurrences_and_merged_orders_beside_the_rest(
    client, center_db, demo_config
) -> None:  # type: ignore[no-untyped-def]
    """复发 counts orders linked to an earlier one (new_linked) and orders reopened; 并单
    counts orders folded into another; both stay in the total they were opened in."""
    import psycopg

    with psycopg.connect(center_db) as db:
        first = seed_order(
            db, demo_config, kind="street_vending", opened_at=_local(10, 18), order_id="rc-a"
        )
        seed_order(
            db, demo_config, kind="street_vending", opened_at=_local(11, 18), order_id="rc-b"
        )
        db.execute("""UPDATE work_orders SET attributes = attributes || '{"recurrence_of": "rc-a"}'
                      WHERE id = 'rc-b'""")  # fmt: skip
        seed_order(
            db, demo_config, kind="street_vending", opened_at=_local(11, 19), order_id="rc-c"
        )
        db.execute("UPDATE work_orders SET state = 'merged' WHERE id = 'rc-c'")
        for action, when, args in (("dispatch", _local(10, 18, 5), {"department": "urban-mgmt"}),
                                   ("mark_false_positive", _local(10, 18, 10), {"reason": "test"}),
                                   ("reopen", _local(12, 9), {"reason": "back again"})):  # fmt: skip
            act_on(db, first, action, time=when, **args)
    window = {"since": _local(10, 0).isoformat(), "until": _local(13, 0).isoformat(), "by": "kind"}
    body = client.get("/api/v1/kpis", params=window, headers=VIEWER).json()
    totals = body["totals"]
    assert (totals["total"], totals["recurrences"], totals["merged"]) == (3, 2, 1)


def test_kpis_by_day_use_the_site_time_zone_and_by_kind_labels(client, kpi_orders) -> None:  # type: ignore[no-untyped-def]
    """C opened at 07:00 in Shanghai (23:00 UTC the day before) counts on 3 March."""
    by_day = client.get("/api/v1/kpis", params=kpi_orders | {"by": "day"}, headers=VIEWER).json()
    assert [(r["key"], r["total"]) for r in by_day["rows"]] == [
        ("2026-03-02", 3),
        ("2026-03-03", 2),
    ]
    by_kind = client.get("/api/v1/kpis", params=kpi_orders | {"by": "kind"}, headers=VIEWER)
    rows = {r["key"]: (r["label"], r["total"]) for r in by_kind.json()["rows"]}
    assert rows == {
        "illegal_parking": ("机动车乱停放", 3),
        "street_vending": ("无照经营游商", 1),
        "waterlogging": ("道路积水", 1),
    }


def test_kpis_defaults_and_bad_arguments(client) -> None:  # type: ignore[no-untyped-def]
    """Without a range: the last 7 site-local days up to now; a bad `by` or range is 422."""
    body = client.get("/api/v1/kpis", headers=VIEWER).json()
    since = datetime.fromisoformat(body["since"]).astimezone(CST)
    until = datetime.fromisoformat(body["until"])
    assert (since.hour, since.minute) == (0, 0)
    assert timedelta(days=6) <= until - since <= timedelta(days=7)
    assert body["by"] == "department"
    assert client.get("/api/v1/kpis?by=weather", headers=VIEWER).status_code == 422
    reversed_range = {"since": "2026-03-04T00:00:00+08:00", "until": "2026-03-02T00:00:00+08:00"}
    assert client.get("/api/v1/kpis", params=reversed_range, headers=VIEWER).status_code == 422


def test_summary_counts_open_overdue_and_escalated(client, db, demo_config) -> None:  # type: ignore[no-untyped-def]
    """Deltas after adding: one open, one overdue, one escalated to street, one false alarm."""
    before = client.get("/api/v1/kpis/summary", headers=VIEWER).json()
    now = datetime.now(UTC)
    seed_order(db, demo_config, order_id="sum-open")
    seed_order(db, demo_config, order_id="sum-late", opened_at=now - timedelta(days=3))
    whistled = seed_order(db, demo_config, order_id="sum-whistle")
    act_on(db, whistled, "escalate", time=now, level="street", reason="blocked")
    fp = seed_order(db, demo_config, order_id="sum-fp", opened_at=now - timedelta(days=3))
    act_on(db, fp, "mark_false_positive", time=now, reason="shadow")

    response = client.get("/api/v1/kpis/summary", headers=VIEWER)
    assert response.status_code == 200
    after = response.json()
    delta = {k: after[k] - before[k] for k in ("open", "overdue", "escalated")}
    assert delta == {"open": 3, "overdue": 1, "escalated": 1}
    assert after["by_state"]["filed"] - before["by_state"]["filed"] == 3
    assert after["by_state"]["false_positive"] - before["by_state"]["false_positive"] == 1
    assert set(after["by_state"]) >= {"reported", "dispatched", "closed", "verified"}
    levels = after["by_escalation_level"]
    assert set(levels) == {"community", "street", "district"}
    assert levels["street"] - before["by_escalation_level"]["street"] == 1


# -- site ----------------------------------------------------------------------------------------


def test_site_has_grid_departments_categories_and_the_boundary(center_settings) -> None:  # type: ignore[no-untyped-def]
    """With site.boundary_geojson set, the grid GeoJSON of the demo comes back as is."""
    from fastapi.testclient import TestClient

    from citywatch.center.app import create_app

    config = center_settings.config
    site = config.site.model_copy(update={"boundary_geojson": Path("demo-district/grid.geojson")})
    settings = dataclasses.replace(center_settings, config=config.model_copy(update={"site": site}))
    with TestClient(create_app(settings)) as client:
        response = client.get("/api/v1/site", headers=VIEWER)
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["timezone"]) == ("demo", "Asia/Shanghai")
    assert body["center"] == {"lat": 31.43, "lon": 119.48}
    assert body["boundary"]["type"] == "FeatureCollection"
    assert {f["properties"]["id"] for f in body["boundary"]["features"]} == {
        "c-renmin", "c-hebin", "c-xinhua",
    }  # fmt: skip
    assert body["tiles"] is None
    district = body["districts"][0]
    assert district["id"] == "d-shifan"
    assert [s["id"] for s in district["streets"]] == ["s-chengdong", "s-chengxi"]
    assert district["streets"][0]["communities"][0] == {"id": "c-renmin", "name": "人民社区"}
    assert {"id": "drainage", "name": "排水管理处 drainage authority"} in body["departments"]
    assert {"kind": "waterlogging", "code": "04-06", "name": "道路积水",
            "department": "drainage"} in body["categories"]  # fmt: skip


def test_site_with_a_broken_boundary_file_is_500_saying_why(center_settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A boundary file that is not a FeatureCollection is a config error the answer names."""
    from fastapi.testclient import TestClient

    from citywatch.center.app import create_app

    broken = tmp_path / "grid.geojson"
    broken.write_text('{"type": "Polygon", "coordinates": []}')
    config = center_settings.config
    site = config.site.model_copy(update={"boundary_geojson": broken})
    settings = dataclasses.replace(center_settings, config=config.model_copy(update={"site": site}))
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        response = client.get("/api/v1/site", headers=VIEWER)
        assert response.status_code == 500
        assert "not a GeoJSON FeatureCollection" in response.json()["detail"]
        assert client.get("/api/v1/me", headers=VIEWER).status_code == 200


def test_site_without_boundary_says_null(client, center_settings) -> None:  # type: ignore[no-untyped-def]
    """The demo config as loaded; boundary is null unless site.boundary_geojson is set."""
    body = client.get("/api/v1/site", headers=VIEWER).json()
    if center_settings.config.site.boundary_geojson is None:
        assert body["boundary"] is None
    else:
        assert body["boundary"]["type"] == "FeatureCollection"
    assert body["name"] == center_settings.config.site.name
