"""The web console in headless Chromium (Debian's, driven by playwright; playwright never
downloads a browser): an operator signs in, a work order appears live from an alert that
a camera gateway publishes through the real pipeline (MQTT → bridge → Kafka → Faust →
PostgreSQL → LISTEN/NOTIFY → SSE), its annotated snapshot shows, the operator dispatches,
signs for and resolves it, and a viewer's list follows every step from the feed alone.

Screenshots of each step go to tests/output/console/ (git-ignored); their paths are printed.
"""

from __future__ import annotations

import hashlib
import random
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from citywatch.contracts import (
    Alert,
    Channel,
    DeviceRef,
    EvidenceRef,
    Location,
    Telemetry,
    encode,
)
from citywatch.stream.migrate import migrate
from tests.integration.test_work_orders import wait_for

from .conftest import TOKENS, LiveServer, center_config, start_server

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
OUTPUT = REPO / "tests" / "output" / "console"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
CAMERA = DeviceRef(site="demo", kind="camera", id="cam-renmin-101")
SENSOR = DeviceRef(site="demo", kind="sensor", id="wl-underpass-01")
STEP_TIMEOUT_MS = 20_000


def write_snapshot(folder: Path, name: str) -> tuple[Path, str]:
    """A small street snapshot with a detection box drawn on it, as a camera gateway would
    store it; returns its path and SHA-256."""
    import cv2

    image = np.full((360, 640, 3), (70, 70, 70), np.uint8)
    image[:120] = (150, 120, 90)  # sky / buildings
    cv2.rectangle(image, (0, 250), (640, 360), (110, 110, 110), -1)  # sidewalk
    for x in range(0, 640, 80):
        cv2.line(image, (x, 200), (x + 40, 200), (220, 220, 220), 3)  # lane marks
    cv2.rectangle(image, (250, 190), (400, 262), (40, 40, 160), -1)  # the car
    cv2.rectangle(image, (244, 184), (406, 268), (0, 255, 255), 2)  # the detection box
    cv2.putText(image, "car 0.91 curb 25s", (246, 178), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                (0, 255, 255), 1, cv2.LINE_AA)  # fmt: skip
    path = folder / name
    assert cv2.imwrite(str(path), image)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def parking_alert(snapshot: Path, digest: str) -> Alert:
    """An illegal-parking alert at a random spot on Renmin road (so that it merges with no
    other test's work order), with the snapshot as evidence."""
    episode = f"{CAMERA.id}.console-{uuid.uuid4().hex[:10]}"
    spot = Location(lat=31.4309 + random.uniform(-0.004, 0.004),
                    lon=119.4815 + random.uniform(-0.004, 0.004))  # fmt: skip
    snapshot_ref = EvidenceRef(
        kind="snapshot", uri=snapshot.as_uri(), content_type="image/jpeg", sha256=digest
    )
    return Alert(
        id=f"{episode}.0", episode_id=episode, seq=0, device=CAMERA, kind="illegal_parking",
        rule="curb-parking", phase="start", event_time=datetime.now(UTC), confidence=0.91,
        location=spot, evidence=(snapshot_ref,), attributes={"dwell_s": 25.0},
    )  # fmt: skip


def order_of_alert(stack, alert_id: str) -> str | None:  # type: ignore[no-untyped-def]
    with psycopg.connect(stack.endpoints.database_url) as conn:
        found = conn.execute(
            "SELECT work_order_id FROM work_order_alerts WHERE alert_id = %s", (alert_id,)
        ).fetchone()
    return found[0] if found else None


@pytest.fixture(scope="module")
def evidence_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("console-evidence")


@pytest.fixture(scope="module")
def console(stack, demo_config, evidence_root: Path) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    """The center on the stack's main database (where the pipeline files work orders)."""
    from citywatch.center.settings import STATIC_DIR, CenterSettings

    if not (STATIC_DIR / "vendor" / "leaflet" / "dist" / "leaflet.js").exists():
        pytest.fail("the console's libraries are missing: run scripts/vendor_console.sh")
    migrate(stack.endpoints.database_url)
    settings = CenterSettings(
        config=center_config(demo_config), database_url=stack.endpoints.database_url,
        evidence_roots=(evidence_root,), config_dir=REPO / "configs",
    )  # fmt: skip
    live = start_server(settings)
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def browser(console: LiveServer) -> Iterator[Any]:
    """Debian's Chromium, headless (closed before the server stops: open feeds end first)."""
    if not CHROMIUM.exists():
        pytest.fail(
            "no /usr/bin/chromium: install Debian's chromium (scripts/setup.sh does, as root)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Screens:
    """Numbered screenshots of one run, printed as they are taken."""

    def __init__(self, clear: bool = True) -> None:
        OUTPUT.mkdir(parents=True, exist_ok=True)
        if clear:
            for old in OUTPUT.glob("*.png"):
                old.unlink()
        self.count = len(list(OUTPUT.glob("*.png")))

    def take(self, page: Any, name: str) -> Path:
        self.count += 1
        path = OUTPUT / f"{self.count:02d}-{name}.png"
        page.screenshot(path=str(path))
        print(f"screenshot: {path}")
        return path


def watch_errors(page: Any) -> list[str]:
    """Collect the page's script errors and Content-Security-Policy violations in
    ``page.errors`` (a violation is only a console message, not a page error)."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda message: errors.append(message.text)
            if "Content Security Policy" in message.text else None)  # fmt: skip
    page.errors = errors
    return errors


def sign_in(browser: Any, url: str, role: str, lang: str = "zh") -> Any:
    context = browser.new_context(viewport={"width": 1680, "height": 1000}, locale="zh-CN")
    context.add_init_script(f"localStorage.setItem('citywatch.lang', '{lang}')")
    page = context.new_page()
    watch_errors(page)
    page.goto(url)
    page.get_by_test_id("login-screen").wait_for(state="visible", timeout=STEP_TIMEOUT_MS)
    page.get_by_test_id("login-token").fill(TOKENS[role])
    page.get_by_test_id("login-submit").click()
    page.get_by_test_id("user-name").wait_for(state="visible", timeout=STEP_TIMEOUT_MS)
    page.wait_for_selector(
        '[data-testid="feed-status"][data-state="open"]', timeout=STEP_TIMEOUT_MS
    )
    return page


def row(page: Any, order_id: str) -> Any:
    return page.locator(f'tr[data-testid="order-row"][data-id="{order_id}"]')


def act(page: Any, action: str, fill: Callable[[Any], None] | None = None) -> None:
    """Press an action button, fill its form, submit."""
    page.get_by_test_id(f"action-{action}").click()
    form = page.get_by_test_id(f"form-{action}")
    if fill:
        fill(form)
    form.get_by_test_id("action-submit").click()


def wait_state(page: Any, order_id: str, state: str, *, detail: bool = True) -> None:
    page.wait_for_selector(
        f'tr[data-testid="order-row"][data-id="{order_id}"][data-state="{state}"]',
        timeout=STEP_TIMEOUT_MS,
    )
    if detail:
        page.wait_for_selector(
            f'[data-testid="detail-state"][data-state="{state}"]', timeout=STEP_TIMEOUT_MS
        )


def test_console_and_api_docs_run_under_the_csp_without_a_violation(
    console: LiveServer, browser: Any
) -> None:
    """The console signs in, opens its live feed by a signed URL and shows a state badge, and
    /docs renders, all with no inline script and no CSP violation."""
    page = sign_in(browser, console.url, "viewer", lang="en")
    page.get_by_test_id("order-list").wait_for(state="attached", timeout=STEP_TIMEOUT_MS)
    docs = page.context.new_page()
    docs_errors = watch_errors(docs)
    docs.goto(f"{console.url}/docs")
    docs.wait_for_selector(".swagger-ui .opblock", timeout=STEP_TIMEOUT_MS)
    assert page.errors == [] and docs_errors == []  # type: ignore[attr-defined]
    probe = page.context.new_page()  # the policy is on, and a violation would be seen
    probe_errors = watch_errors(probe)
    probe.goto(console.url)
    probe.evaluate("document.body.setAttribute('style', 'color: red')")
    probe.wait_for_timeout(500)
    assert any("style-src" in error for error in probe_errors), probe_errors


def test_operator_sees_a_live_work_order_and_takes_it_to_resolved(
    stack, pipeline, publisher_for, console: LiveServer, browser, evidence_root: Path
) -> None:  # type: ignore[no-untyped-def]
    """Sign in, a parking alert becomes a live row, its snapshot shows, dispatch → sign →
    resolve with a photo; a viewer's list follows from the feed and offers no actions."""
    started = time.monotonic()
    screens = Screens()
    stranger = browser.new_page()
    stranger.goto(console.url)
    stranger.get_by_test_id("login-token").fill("not-a-token-of-anyone")
    stranger.get_by_test_id("login-submit").click()
    stranger.get_by_test_id("login-error").wait_for(state="visible", timeout=STEP_TIMEOUT_MS)
    screens.take(stranger, "login-refused")
    stranger.close()
    operator = sign_in(browser, console.url, "operator")
    assert operator.get_by_test_id("user-role").inner_text() == "值班员"  # operator, in Chinese
    viewer = sign_in(browser, console.url, "viewer", lang="en")
    screens.take(operator, "signed-in")

    snapshot, digest = write_snapshot(evidence_root, f"snap-{uuid.uuid4().hex[:8]}.jpg")
    alert = parking_alert(snapshot, digest)
    publisher_for("gw-cam-renmin").publish(CAMERA.address(Channel.ALERTS).topic, encode(alert))

    order_id = wait_for(
        lambda: order_of_alert(stack, alert.id), what="the pipeline to file the alert's work order"
    )
    # The page was never reloaded: the row can only have come from the live feed.
    row(operator, order_id).wait_for(timeout=STEP_TIMEOUT_MS)
    row(viewer, order_id).wait_for(timeout=STEP_TIMEOUT_MS)
    assert row(operator, order_id).get_attribute("data-state") == "filed"
    screens.take(operator, "live-row")

    row(operator, order_id).click()
    operator.wait_for_selector(
        f'[data-testid="detail-id"]:text-is("{order_id}")', timeout=STEP_TIMEOUT_MS
    )
    image = operator.get_by_test_id("evidence-image").first
    operator.wait_for_function(
        "img => img.complete && img.naturalWidth === 640", arg=image.element_handle(),
        timeout=STEP_TIMEOUT_MS,
    )  # fmt: skip
    screens.take(operator, "detail-snapshot")

    def elsewhere(form: Any) -> None:  # not the routed urban management: a reason is asked
        form.get_by_test_id("field-department").select_option("traffic-police")
        form.get_by_test_id("field-reason").fill("占用机动车道 blocks the carriageway")

    act(operator, "dispatch", elsewhere)
    wait_state(operator, order_id, "dispatched")
    screens.take(operator, "dispatched")

    act(operator, "sign")
    wait_state(operator, order_id, "signed")
    act(operator, "extend", lambda form: form.get_by_test_id("field-duration").fill("soon"))
    refusal = operator.get_by_test_id("action-error")
    refusal.wait_for(state="visible", timeout=STEP_TIMEOUT_MS)
    assert refusal.inner_text().strip(), "the API's 422 message is shown"
    screens.take(operator, "bad-argument-shown")

    def resolution(form: Any) -> None:
        form.get_by_test_id("field-note").fill("车辆已驶离, 现场恢复 vehicle gone, curb clear")
        form.get_by_test_id("field-photo").set_input_files(str(snapshot))

    act(operator, "resolve", resolution)
    wait_state(operator, order_id, "resolved")
    operator.get_by_test_id("attachment-image").first.wait_for(timeout=STEP_TIMEOUT_MS)
    timeline = operator.get_by_test_id("detail-timeline").inner_text()
    assert "operator" in timeline
    screens.take(operator, "resolved")

    # The viewer acted on nothing: every change reached its list through the feed.
    wait_state(viewer, order_id, "resolved", detail=False)
    row(viewer, order_id).click()
    viewer.wait_for_selector(
        '[data-testid="detail-state"][data-state="resolved"]', timeout=STEP_TIMEOUT_MS
    )
    assert viewer.locator('[data-testid^="action-"]').count() == 0
    screens.take(viewer, "viewer-follows-feed")

    operator.get_by_test_id("tab-devices").click()
    operator.get_by_test_id("devices-panel").locator("table, p").first.wait_for(
        timeout=STEP_TIMEOUT_MS
    )
    screens.take(operator, "devices")
    operator.get_by_test_id("tab-kpis").click()
    operator.get_by_test_id("kpi-panel").locator("table, p").first.wait_for(timeout=STEP_TIMEOUT_MS)
    screens.take(operator, "kpis")

    assert operator.errors == [] and viewer.errors == []  # type: ignore[attr-defined]
    print(f"console scenario took {time.monotonic() - started:.1f} s")


def test_waterlogging_order_shows_the_sensor_depth_chart(
    stack, pipeline, publisher_for, console: LiveServer, browser
) -> None:  # type: ignore[no-untyped-def]
    """A sensor's rising water (telemetry) and its alert: the detail panel charts the depth
    against the site's levels."""
    gateway = publisher_for("gw-sensors-east")
    now = datetime.now(UTC)
    for minute in range(30, -1, -2):
        depth_cm = max(0.0, 28.0 - minute) if minute < 28 else 0.0
        reading = Telemetry(
            id=f"{SENSOR.id}.console-{uuid.uuid4().hex[:10]}", device=SENSOR,
            event_time=now - timedelta(minutes=minute), metrics={"depth_cm": depth_cm},
        )  # fmt: skip
        gateway.publish(SENSOR.address(Channel.TELEMETRY).topic, encode(reading))
    episode = f"{SENSOR.id}.console-{uuid.uuid4().hex[:10]}"
    alert = Alert(
        id=f"{episode}.0", episode_id=episode, seq=0, device=SENSOR, kind="waterlogging",
        rule="depth", phase="start", event_time=now - timedelta(minutes=10), confidence=1.0,
        location=Location(lat=31.4312, lon=119.4821), attributes={"level": "lane", "depth_cm": 18.0},
    )  # fmt: skip
    gateway.publish(SENSOR.address(Channel.ALERTS).topic, encode(alert))
    order_id = wait_for(lambda: order_of_alert(stack, alert.id), what="the waterlogging work order")

    page = sign_in(browser, console.url, "operator", lang="en")
    page.get_by_test_id("filter-kind").select_option("waterlogging")
    row(page, order_id).click()
    chart = page.get_by_test_id("depth-chart")
    chart.locator("canvas").wait_for(timeout=STEP_TIMEOUT_MS)
    Screens(clear=False).take(page, "depth-chart")
    assert page.errors == []  # type: ignore[attr-defined]
