"""The duty officer's console in headless Chromium at 1366×768 (a common control-room
laptop), on work orders written straight into the database (their live-feed events come
from the database's own notifications, as the stream tier's do):

- triage: most urgent first with a live countdown, short numbers, kind icons, a legend and
  clusters on the map, KPI tiles that filter, the due column visible in both languages;
- the detail in Chinese with no English left (machine reasons, SLA texts, event data, the
  role badge, box captions), the camera named and linked, snapshots, crops and a playable
  clip (and a clip in a codec browsers lack offered as a download);
- dispatch with the routed department preselected and a reason for another one;
- hotline orders (one joins the open order at its spot, one opens with a photo);
- the opt-in P1 alarm (sound and desktop notification), the CSV exports and the KPI range
  with its chart.

Screenshots go to tests/output/console/ as triage-*.png (git-ignored); their paths are
printed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from tests.center.conftest import TOKENS
from tests.center.seed import act_on, seed_order
from tests.center.test_console_browser import CHROMIUM, CHROMIUM_ARGS, OUTPUT, watch_errors

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STEP_MS = 20_000
VIEWPORT = {"width": 1366, "height": 768}
NUMBER = re.compile(r"^DEMO-\d{8}-\d{4}$")
RENMIN = (31.4309, 119.4815)
"""Where cam-renmin-101 stands (configs/demo-district/devices.yaml)."""


class Shots:
    """This module's screenshots (triage-NN-name.png), replacing its previous run's only."""

    def __init__(self) -> None:
        OUTPUT.mkdir(parents=True, exist_ok=True)
        for old in OUTPUT.glob("triage-*.png"):
            old.unlink()
        self.count = 0

    def take(self, page: Any, name: str) -> Path:
        self.count += 1
        path = OUTPUT / f"triage-{self.count:02d}-{name}.png"
        page.screenshot(path=str(path))
        print(f"screenshot: {path}")
        return path


@pytest.fixture(scope="module")
def shots() -> Shots:
    return Shots()


@pytest.fixture(scope="module")
def browser(live_center) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """Debian's Chromium, headless, closed before the center stops."""
    if not CHROMIUM.exists():
        pytest.fail("no /usr/bin/chromium: install Debian's chromium (scripts/setup.sh does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[*CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"],
        )
        try:
            yield chromium
        finally:
            chromium.close()


SPIES = """
window.__notes = [];
window.__beeps = 0;
const RealNotification = window.Notification;
class SpyNotification {
  constructor(title, options) {
    window.__notes.push({ title, body: options && options.body });
    try { return new RealNotification(title, options); } catch (err) { /* headless */ }
  }
  static get permission() { return RealNotification.permission; }
  static requestPermission() { return RealNotification.requestPermission(); }
}
window.Notification = SpyNotification;
const realStart = OscillatorNode.prototype.start;
OscillatorNode.prototype.start = function (...args) { window.__beeps += 1; return realStart.apply(this, args); };
"""
"""The test's ears and eyes on the desktop: records each notification and tone the page
makes (headless Chromium shows and plays neither)."""


def open_console(browser: Any, url: str, role: str, lang: str) -> Any:
    context = browser.new_context(viewport=VIEWPORT, locale="zh-CN", accept_downloads=True)
    context.grant_permissions(["notifications"], origin=url)
    context.add_init_script(f"localStorage.setItem('citywatch.lang', '{lang}')")
    context.add_init_script(SPIES)
    page = context.new_page()
    watch_errors(page)
    page.goto(url)
    page.get_by_test_id("login-token").fill(TOKENS[role])
    page.get_by_test_id("login-submit").click()
    page.wait_for_selector('[data-testid="feed-status"][data-state="open"]', timeout=STEP_MS)
    page.wait_for_selector('[data-testid="order-list"]:not([aria-busy])', timeout=STEP_MS)
    return page


def row(page: Any, order_id: str) -> Any:
    return page.locator(f'tr[data-testid="order-row"][data-id="{order_id}"]')


def row_ids(page: Any) -> list[str]:
    return list(
        page.eval_on_selector_all(
            'tr[data-testid="order-row"]', "rows => rows.map(r => r.dataset.id)"
        )
    )


def set_due(conn: psycopg.Connection, order_id: str, due: datetime) -> None:
    conn.execute("UPDATE work_orders SET due_at = %s WHERE id = %s", (due, order_id))
    conn.commit()


def write_media(folder: Path) -> dict[str, dict[str, str]]:
    """A snapshot and a crop (JPEG), a WebM/VP8 clip browsers play and an MPEG-4 part 2
    clip (what OpenCV's mp4v writes) they do not; evidence references to each."""
    import cv2

    refs: dict[str, dict[str, str]] = {}

    def ref(kind: str, path: Path, content_type: str) -> None:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        refs[path.name] = {"kind": kind, "uri": path.as_uri(), "content_type": content_type,
                           "sha256": digest}  # fmt: skip

    frame = np.full((360, 640, 3), (70, 70, 70), np.uint8)
    cv2.rectangle(frame, (250, 190), (400, 262), (40, 40, 160), -1)
    cv2.rectangle(frame, (244, 184), (406, 268), (0, 255, 255), 2)
    for name, image in (("snap.jpg", frame), ("crop.jpg", frame[184:268, 244:406])):
        assert cv2.imwrite(str(folder / name), image)
        ref("snapshot" if name == "snap.jpg" else "crop", folder / name, "image/jpeg")
    for name, fourcc, content_type in (("clip.webm", "VP80", "video/webm"),
                                       ("clip.mp4", "mp4v", "video/mp4")):  # fmt: skip
        writer = cv2.VideoWriter(
            str(folder / name), cv2.VideoWriter.fourcc(*fourcc), 10, (320, 180)
        )
        assert writer.isOpened(), f"OpenCV cannot write {fourcc}"
        for i in range(20):
            writer.write(np.full((180, 320, 3), (40 + 8 * i, 90, 140), np.uint8))
        writer.release()
        ref("clip", folder / name, content_type)
    return refs


def add_notice(conn: psycopg.Connection, alert_id: str, ref: dict[str, str]) -> None:
    """Evidence announced after its alert (a finished clip), as the stream stores it."""
    conn.execute(
        """INSERT INTO evidence (id, alert_id, device_id, kind, uri, content_type, sha256, event_time)
           VALUES (%s, %s, 'cam-renmin-101', %s, %s, %s, %s, now())""",
        (f"{alert_id}.{ref['kind']}", alert_id, ref["kind"], ref["uri"], ref["content_type"],
         ref["sha256"]),
    )  # fmt: skip
    conn.commit()


def new_order(page: Any, **fields: str) -> Any:
    """Open the hotline form and fill it: selects (via, kind) and text fields by name."""
    page.get_by_test_id("new-order").click()
    form = page.get_by_test_id("hotline-form")
    for name, value in fields.items():
        field = form.get_by_test_id(f"hotline-{name}")
        if name in ("via", "kind"):
            field.select_option(value)
        else:
            field.fill(value)
    return form


def downloaded_csv(page: Any, button: str) -> tuple[list[dict[str, str]], str]:
    """Click an export button; the rows of the CSV file it saves (with a byte-order mark,
    for spreadsheets) and the file's name."""
    with page.expect_download() as saving:
        page.get_by_test_id(button).click()
    text = Path(saving.value.path()).read_text(encoding="utf-8")
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text[1:]))), saving.value.suggested_filename


def fits_in_list(page: Any) -> dict[str, float]:
    """Where the due column ends against the list pane and the window (CSS pixels)."""
    return dict(page.evaluate("""() => {
        const due = document.querySelector('[data-testid="col-due"]').getBoundingClientRect();
        const pane = document.querySelector('.list-pane').getBoundingClientRect();
        const scroll = document.querySelector('.list-scroll');
        return {due_right: due.right, due_width: due.width, pane_right: pane.right,
                window: window.innerWidth, overflow: scroll.scrollWidth - scroll.clientWidth};
    }"""))  # fmt: skip


def test_triage_view_ranks_counts_down_explains_and_fits_1366_in_both_languages(
    live_center, browser, db, demo_config, center_settings, shots: Shots
) -> None:  # type: ignore[no-untyped-def]
    """Overdue, then P1 by time left, first; countdowns tick; numbers everywhere; icons,
    legend, clusters and fanned overlaps on the map; tiles filter; at 1366 px the due column
    shows in Chinese and English; the Chinese detail has no English left, names and links
    the camera, shows the snapshot and crop and plays the clip."""
    started = time.monotonic()
    now = datetime.now(UTC)
    media = write_media(center_settings.evidence_roots[0])
    lat, lon = RENMIN
    evidence = [media["snap.jpg"], media["crop.jpg"]]
    parking = seed_order(db, demo_config, priority=3, lat=lat, lon=lon, alerts=2, evidence=evidence)
    db.execute("""UPDATE alerts SET attributes = '{"class": "car", "dwell_s": 25}', confidence = 0.9
                  WHERE id LIKE %s""", (f"{parking.id}.%",))  # fmt: skip
    db.commit()
    add_notice(db, f"{parking.id}.a0.0", media["clip.webm"])
    add_notice(db, f"{parking.id}.a1.0", media["clip.mp4"])
    act_on(db, parking, "escalate", time=now - timedelta(minutes=1), actor="citywatch",
           level="community", reason="0.8 of the SLA time limit elapsed")  # fmt: skip
    set_due(db, parking.id, now - timedelta(minutes=90))  # overdue
    smoke = seed_order(db, demo_config, kind="smoke", priority=1, lat=31.4352, lon=119.4741)
    set_due(db, smoke.id, now + timedelta(minutes=10))
    water = seed_order(db, demo_config, kind="waterlogging", priority=2, lat=31.4281, lon=119.4893,
                       device_id="wl-underpass-01", device_kind="sensor")  # fmt: skip
    set_due(db, water.id, now + timedelta(minutes=25))
    trio = [seed_order(db, demo_config, kind="street_vending", priority=4,
                       lat=31.4330 + 0.00006 * i, lon=119.4790 + 0.00005 * i) for i in range(3)]  # fmt: skip
    for kind in ("illegal_parking", "device_fault"):  # two orders on one spot
        seed_order(db, demo_config, kind=kind, priority=3, lat=31.4265, lon=119.4760)

    page = open_console(browser, live_center.url, "operator", "zh")
    ranked = row_ids(page)
    assert ranked[:3] == [parking.id, smoke.id, water.id], ranked
    numbers = page.eval_on_selector_all(
        '[data-testid="order-number"]', "n => n.map(e => e.textContent)"
    )
    assert all(NUMBER.match(n) for n in numbers), numbers
    countdown = row(page, smoke.id).get_by_test_id("order-countdown")
    first = countdown.inner_text()
    page.wait_for_timeout(1300)
    assert countdown.inner_text() != first and first.startswith("剩余"), first
    assert row(page, parking.id).get_by_test_id("order-countdown").inner_text().startswith("超期")
    assert page.get_by_test_id("user-role").inner_text() == "值班员"
    kinds_listed = set(
        page.eval_on_selector_all('[data-testid="order-kind"]', "n => n.map(e => e.textContent)")
    )
    kinds_offered = set(
        page.eval_on_selector_all("#filter-kind option", "o => o.map(e => e.textContent)")
    )
    assert kinds_listed <= kinds_offered and "机动车乱停放" in kinds_listed, (
        kinds_listed,
        kinds_offered,
    )
    layout = fits_in_list(page)
    assert layout["due_width"] > 60 and layout["due_right"] <= layout["pane_right"] + 1, layout
    assert layout["overflow"] <= 0, layout
    page.get_by_test_id("map-legend").wait_for(timeout=STEP_MS)
    assert page.locator('[data-testid="map-legend"] li[data-kind]').count() == 5
    cluster = page.locator('[data-testid="map-cluster"][data-count="3"]')
    cluster.wait_for(timeout=STEP_MS)
    assert page.locator(".order-marker.fanned").count() == 2  # the two orders on one spot
    shots.take(page, "zh-1366-triage")
    cluster.click()
    for order in trio:
        page.locator(f'[data-testid="map-order"][data-id="{order.id}"]').wait_for(timeout=STEP_MS)
    shots.take(page, "zh-map-cluster-opened")

    only = (
        "ids => { const r = [...document.querySelectorAll('tr.order-row')];"
        " return r.length === ids.length && r.every((row, i) => row.dataset.id === ids[i]); }"
    )
    page.get_by_test_id("filter-kind").select_option("smoke")
    page.wait_for_function(only, arg=[smoke.id], timeout=STEP_MS)
    page.get_by_test_id("kpi-overdue").click()  # site-wide: the kind filter goes
    page.wait_for_function(only, arg=[parking.id], timeout=STEP_MS)
    assert page.get_by_test_id("kpi-overdue").get_attribute("aria-pressed") == "true"
    assert page.get_by_test_id("filter-overdue").is_checked()
    assert page.get_by_test_id("filter-kind").input_value() == ""
    shots.take(page, "zh-tile-overdue")
    page.get_by_test_id("kpi-open").click()
    page.wait_for_function(
        "() => document.querySelectorAll('tr.order-row').length >= 7", timeout=STEP_MS
    )

    row(page, parking.id).click()
    page.wait_for_selector(f'[data-testid="detail-id"]:text-is("{parking.id}")', timeout=STEP_MS)
    assert NUMBER.match(page.get_by_test_id("detail-number").inner_text())
    timeline = page.get_by_test_id("detail-timeline").inner_text()
    for english in ("machine report filed automatically", "of the SLA time limit", "kind:",
                    "sla_tier:", "department:", "priority:", "unit level"):  # fmt: skip
        assert english not in timeline, (english, timeline)
    assert "机器上报, 自动立案" in timeline and "已过处置时限的 80%" in timeline
    assert "时限档: 简易 (1 天)" in timeline and "责任单元: 人民社区" in timeline
    assert "人民路与建设路口" in page.get_by_test_id("detail-devices").inner_text()
    for image in page.get_by_test_id("evidence-image").all():
        page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                               arg=image.element_handle(), timeout=STEP_MS)  # fmt: skip
    assert {i.get_attribute("data-kind") for i in page.get_by_test_id("evidence-image").all()} == {
        "snapshot", "crop"}  # fmt: skip
    assert "车辆 0.90 · 停留 25 秒" in page.get_by_test_id("evidence-caption").first.inner_text()
    video = page.get_by_test_id("evidence-video").first
    page.wait_for_function("v => v.readyState >= 1 && v.videoWidth === 320",
                           arg=video.element_handle(), timeout=STEP_MS)  # fmt: skip
    video.evaluate("v => v.play()")
    page.wait_for_function("v => v.currentTime > 0", arg=video.element_handle(), timeout=STEP_MS)
    page.get_by_test_id("clip-unplayable").wait_for(timeout=STEP_MS)  # the mp4v clip
    shots.take(page, "zh-detail-evidence")
    page.get_by_test_id("detail-timeline").scroll_into_view_if_needed()
    shots.take(page, "zh-detail-timeline")
    page.get_by_test_id("device-link").first.click()
    page.wait_for_selector(
        '#devices-slot tr.highlight[data-device="cam-renmin-101"]', timeout=STEP_MS
    )
    assert "gateway" not in page.get_by_test_id("devices-panel").inner_text()  # 边缘网关
    shots.take(page, "zh-device-linked")
    assert page.errors == []  # type: ignore[attr-defined]
    page.context.close()

    english = open_console(browser, live_center.url, "viewer", "en")
    assert row_ids(english)[:3] == [parking.id, smoke.id, water.id]
    layout = fits_in_list(english)
    assert layout["due_width"] > 60 and layout["due_right"] <= layout["pane_right"] + 1, layout
    assert layout["overflow"] <= 0, layout
    assert english.get_by_test_id("user-role").inner_text() == "viewer"
    assert row(english, smoke.id).get_by_test_id("order-countdown").inner_text().startswith("left ")
    row(english, parking.id).click()
    english.get_by_test_id("detail-timeline").wait_for(timeout=STEP_MS)
    text = english.get_by_test_id("detail-timeline").inner_text()
    assert "0.8 of the SLA" not in text and "80% of the SLA time limit elapsed" in text
    shots.take(english, "en-1366-triage")
    assert english.errors == []  # type: ignore[attr-defined]
    english.context.close()
    print(f"triage view took {time.monotonic() - started:.1f} s")


def test_operator_dispatches_with_a_reason_files_hotline_orders_hears_p1_and_exports(
    live_center, browser, db, demo_config, center_settings, shots: Shots
) -> None:  # type: ignore[no-untyped-def]
    """Dispatch offers the routed department and asks a reason for another; a call at an
    open order's spot joins it, a call elsewhere opens one with its photo; a new P1 order
    sounds and notifies only once the alarm is on; the list and the KPIs export as CSV;
    the KPI range draws its chart."""
    started = time.monotonic()
    parking = seed_order(db, demo_config, lat=31.4402, lon=119.4705, community="c-dispatch")
    vendor = seed_order(
        db, demo_config, kind="street_vending", priority=4, lat=31.4371, lon=119.4688
    )
    page = open_console(browser, live_center.url, "operator", "zh")

    row(page, parking.id).click()
    page.get_by_test_id("action-dispatch").click()
    form = page.get_by_test_id("form-dispatch")
    department = form.get_by_test_id("field-department")
    assert department.input_value() == "urban-mgmt"
    assert not form.get_by_test_id("reason-hint").is_visible()
    department.select_option("traffic-police")
    assert form.get_by_test_id("reason-hint").is_visible()
    form.get_by_test_id("action-submit").click()
    page.wait_for_timeout(400)
    assert page.get_by_test_id("detail-state").get_attribute("data-state") == "filed"
    shots.take(page, "zh-dispatch-needs-reason")
    form.get_by_test_id("field-reason").fill("占用机动车道 blocks the lane")
    form.get_by_test_id("action-submit").click()
    page.wait_for_selector('[data-testid="detail-state"][data-state="dispatched"]', timeout=STEP_MS)
    timeline = page.get_by_test_id("detail-timeline").inner_text()
    assert "占用机动车道 blocks the lane" in timeline and "默认部门: 城管执法局" in timeline
    shots.take(page, "zh-dispatched-elsewhere")

    hotline = new_order(page, kind="street_vending", description="烧烤摊又出摊了, 占用人行道",
                        lat="31.43712", lon="119.46885")  # fmt: skip
    shots.take(page, "zh-hotline-form")
    hotline.get_by_test_id("hotline-submit").click()
    result = page.get_by_test_id("hotline-result")
    result.wait_for(timeout=STEP_MS)
    assert result.get_attribute("data-joined") == "true"
    page.wait_for_selector(f'[data-testid="detail-id"]:text-is("{vendor.id}")', timeout=STEP_MS)
    assert "群众投诉" in page.get_by_test_id("detail-timeline").inner_text()
    shots.take(page, "zh-hotline-joined")

    photo = center_settings.evidence_roots[0] / "hotline-photo.jpg"
    import cv2

    assert cv2.imwrite(str(photo), np.full((120, 160, 3), (30, 120, 200), np.uint8))
    hotline = new_order(page, via="citizen", kind="illegal_parking",
                        description="小区门口车辆堵住消防通道", contact="139-0000-0000")  # fmt: skip
    hotline.get_by_test_id("hotline-pick").click()
    box = page.get_by_test_id("map").bounding_box()
    page.mouse.click(box["x"] + box["width"] - 60, box["y"] + box["height"] / 2)
    assert hotline.get_by_test_id("hotline-lat").input_value() != ""
    hotline.get_by_test_id("hotline-photo").set_input_files(str(photo))
    hotline.get_by_test_id("hotline-submit").click()
    result = page.get_by_test_id("hotline-result")
    result.wait_for(timeout=STEP_MS)
    assert result.get_attribute("data-joined") == "false"
    page.get_by_test_id("attachment-image").first.wait_for(timeout=STEP_MS)
    number = page.get_by_test_id("detail-number").inner_text()
    assert NUMBER.match(number) and number in result.inner_text()
    assert page.get_by_test_id("detail-via").inner_text() == "群众举报"
    page.locator(f'tr[data-testid="order-row"][data-number="{number}"]').wait_for(timeout=STEP_MS)
    shots.take(page, "zh-hotline-created")

    unheard = seed_order(db, demo_config, kind="smoke", priority=1, lat=31.4331, lon=119.4702)
    row(page, unheard.id).wait_for(timeout=STEP_MS)
    assert page.get_by_test_id("p1-toast").count() == 0 and page.evaluate("window.__beeps") == 0
    page.get_by_test_id("alerts-toggle").click()
    page.wait_for_selector('[data-testid="alerts-toggle"][aria-pressed="true"]', timeout=STEP_MS)
    fire = seed_order(db, demo_config, kind="smoke", priority=1, lat=31.4295, lon=119.4731)
    page.locator(f'[data-testid="p1-toast"][data-id="{fire.id}"]').wait_for(timeout=STEP_MS)
    notes = page.evaluate("window.__notes")
    assert len(notes) == 1 and notes[0]["title"] == "新的特急工单", notes
    assert NUMBER.match(notes[0]["body"].split(" · ")[0]), notes
    assert page.evaluate("window.__beeps") >= 2
    shots.take(page, "zh-p1-alarm")

    exported, _ = downloaded_csv(page, "export-orders")
    assert fire.id in {r["id"] for r in exported}
    assert all(NUMBER.match(r["number"]) for r in exported)

    page.get_by_test_id("tab-kpis").click()
    today = datetime.now(UTC).astimezone(center_settings.tz).date()
    page.get_by_test_id("kpis-since").fill((today - timedelta(days=6)).isoformat())
    page.get_by_test_id("kpis-until").fill(today.isoformat())
    page.get_by_test_id("kpis-by").select_option("kind")
    page.get_by_test_id("kpis-apply").click()
    page.get_by_test_id("kpi-chart").wait_for(timeout=STEP_MS)
    bars = page.locator('[data-testid="kpi-bar"]')
    assert bars.count() == 7
    assert int(bars.last.get_attribute("data-value") or 0) >= 5
    assert "露天烧烤/焚烧" in page.get_by_test_id("kpi-table").inner_text()
    shots.take(page, "zh-kpis-range-chart")
    table, name = downloaded_csv(page, "kpis-export")
    assert table[-1]["key"] == "all" and int(table[-1]["total"]) >= 5
    assert name.startswith("kpis-kind-")
    assert page.errors == []  # type: ignore[attr-defined]
    page.context.close()
    print(f"operator scenario took {time.monotonic() - started:.1f} s")
