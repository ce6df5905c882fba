"""The kiosk page and stale sensors, in Debian's Chromium against the real stack.

/display fits a small screen with large values and no scrolling, a silent
producer's tiles and cards are marked stale within 3 of its intervals and
cleared when it is back, and a web server down for 30 s is shown, then the
page resumes and holds every reading of the gap. `UPDATE_SCREENSHOT=1` saves
the README's pictures of /display (light and dark) under docs/.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import Problems, chromium, get_json, wait_for_sensors
from playwright.sync_api import Browser, Page, expect

from devtools.stack import Stack

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
SOURCE = "pi-livingroom"
DEMO_METRICS = (
    "temperature_c",
    "humidity_pct",
    "pressure_hpa",
    "cpu_temp_c",
    "fan_rpm",
    "package_power_w",
)
INTERVAL_S = 1.0
MIN_VALUE_PX = 48
# Every reading event the page receives, recorded before its own scripts run
# (Playwright's init scripts are not subject to the page's CSP).
RECORD_READINGS = """
window.__readings = [];
const NativeEventSource = window.EventSource;
window.EventSource = class extends NativeEventSource {
  constructor(...args) {
    super(...args);
    this.addEventListener("reading", (event) => {
      const r = JSON.parse(event.data);
      window.__readings.push([r.source, r.sensor, r.seq, r.ts]);
    });
  }
};
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium for the module."""
    with chromium() as browser:
        yield browser


@pytest.fixture
def kiosk(tmp_path: Path, redis_url: str) -> Iterator[Stack]:
    """Recorder, web and one demo producer at 1 Hz (its interval is what stale is judged by)."""
    stack = Stack.create(
        tmp_path,
        {
            "REDIS_URL": redis_url,
            "INTERVAL": str(INTERVAL_S),
            "WEB_WORKERS": "1",
            "HEARTBEAT_INTERVAL": "1",
            "SENSORS": "demo",
            "SOURCE": SOURCE,
        },
        log_dir=tmp_path / "logs",
    )
    try:
        stack.start("recorder", ["-m", "recorder"])
        stack.start("producer", ["-m", "producers"])
        stack.env["URL"] = stack.start_web()
        wait_for_sensors(stack.env["URL"])
        yield stack
    finally:
        stack.stop_all()


def value(page: Page, metric: str):
    """The locator of one demo metric's live value."""
    return page.locator(f'[data-metric="{SOURCE}/demo/{metric}"]')


def open_display(page: Page, url: str) -> None:
    """Open /display and wait until every demo metric shows a number."""
    page.goto(f"{url}/display")
    for metric in DEMO_METRICS:
        expect(value(page, metric)).not_to_have_text("—", timeout=20000)


@pytest.mark.parametrize(("width", "height"), [(800, 480), (1024, 600)])
def test_display_fits_the_screen(kiosk: Stack, browser: Browser, width: int, height: int) -> None:
    """Every demo metric, no scrollbar, values >= 48 px, and a value that changes live."""
    for scheme in ("light", "dark"):
        page = browser.new_page(viewport={"width": width, "height": height}, color_scheme=scheme)
        problems = Problems(page)
        open_display(page, kiosk.env["URL"])
        size = page.evaluate(
            "() => [document.documentElement.scrollWidth, document.documentElement.scrollHeight,"
            " innerWidth, innerHeight]"
        )
        assert size[0] <= size[2], f"scrolls sideways: {size}"
        assert size[1] <= size[3], f"scrolls down: {size}"
        for metric in DEMO_METRICS:
            box = value(page, metric).bounding_box()
            assert box is not None
            assert box["y"] + box["height"] <= height
            font = value(page, metric).evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
            assert font >= MIN_VALUE_PX, f"{metric} at {font} px"
        wait_for_a_change(page)
        assert page.locator("button, input, select, a").count() == 0, "a kiosk has no controls"
        if width == 800:
            save_screenshot(page, scheme)
        problems.check()
        page.close()


def wait_for_a_change(page: Page) -> None:
    """Some demo metric shows a new value: the page is live."""
    selector = ", ".join(f'[data-metric="{SOURCE}/demo/{m}"]' for m in DEMO_METRICS)
    page.wait_for_function(
        "([sel, before]) => [...document.querySelectorAll(sel)].map(e => e.textContent)"
        ".some((t, i) => t !== before[i])",
        arg=[selector, page.locator(selector).all_inner_texts()],
        timeout=20000,
    )


def save_screenshot(page: Page, scheme: str) -> None:
    """The README's picture of /display (docs/ only when UPDATE_SCREENSHOT=1)."""
    folder = ROOT / ("docs" if os.environ.get("UPDATE_SCREENSHOT") else "artifacts")
    folder.mkdir(exist_ok=True)
    page.screenshot(path=str(folder / f"display-800x480-{scheme}.png"))


def test_stale_producer_marked_then_cleared(kiosk: Stack, browser: Browser) -> None:
    """A stopped producer: data-stale on tiles and cards within 3 intervals + 1 s; back: cleared."""
    display = browser.new_page(viewport={"width": 800, "height": 480})
    open_display(display, kiosk.env["URL"])
    dashboard = browser.new_page(viewport={"width": 1280, "height": 800})
    dashboard.goto(f"{kiosk.env['URL']}/")
    expect(value(dashboard, "temperature_c")).not_to_have_text("—", timeout=20000)
    # The interval is learned from the readings: give each page a few.
    time.sleep(4 * INTERVAL_S)
    tiles = display.locator(f'[data-tile^="{SOURCE}/demo/"]')
    cards = dashboard.locator(f'[data-card^="{SOURCE}/demo/"]')
    assert display.locator("[data-stale]").count() == 0
    assert dashboard.locator("[data-stale]").count() == 0

    kiosk.stop("producer")
    stopped = time.monotonic()
    limit_ms = (3 * INTERVAL_S + 1) * 1000
    expect(tiles.and_(display.locator("[data-stale]"))).to_have_count(6, timeout=limit_ms)
    expect(cards.and_(dashboard.locator("[data-stale]"))).to_have_count(6, timeout=limit_ms)
    elapsed = time.monotonic() - stopped
    assert elapsed <= 3 * INTERVAL_S + 1, f"stale after {elapsed:.1f} s"
    expect(tiles.first).to_contain_text("silent for")
    expect(dashboard.locator(f'[data-sensor="{SOURCE}/demo"] .sensor-age')).to_contain_text(
        "silent for"
    )

    kiosk.start("producer", ["-m", "producers"])
    expect(display.locator("[data-stale]")).to_have_count(0, timeout=20000)
    expect(dashboard.locator("[data-stale]")).to_have_count(0, timeout=20000)
    display.close()
    dashboard.close()


def test_outage_shown_then_every_reading_backfilled(kiosk: Stack, browser: Browser) -> None:
    """Web server down 30 s: the page says so, reconnects, and holds every reading of the gap."""
    url = kiosk.env["URL"]
    page = browser.new_page(viewport={"width": 800, "height": 480})
    page.add_init_script(RECORD_READINGS)
    open_display(page, url)
    connection = page.locator("#connection")
    expect(connection).to_have_attribute("data-state", "live", timeout=15000)
    page.wait_for_function("() => window.__readings.length >= 3", timeout=15000)

    down_at = time.time()
    # The gap: everything after the newest reading the page had before the cut.
    seen_before = max(r[3] for r in page.evaluate("window.__readings"))
    kiosk.stop("web")
    expect(connection).to_have_attribute("data-state", "offline", timeout=15000)
    expect(connection).to_contain_text("Server unreachable")
    time.sleep(max(0.0, down_at + 30 - time.time()))
    up_at = time.time()
    kiosk.start_web(port=int(url.rsplit(":", 1)[1]))
    expect(connection).to_have_attribute("data-state", "live", timeout=30000)

    query = f"source={SOURCE}&since={seen_before}&until={up_at}&limit=10000"
    stored = [
        r for r in get_json(f"{url}/api/readings?{query}")["readings"] if r["ts"] > seen_before
    ]
    assert len(stored) >= 25, "the producer kept publishing through the outage"
    expected = {(r["source"], r["sensor"], r["seq"]) for r in stored}
    page.wait_for_function("(n) => window.__readings.length >= n", arg=len(expected), timeout=15000)
    received = {tuple(r[:3]) for r in page.evaluate("window.__readings")}
    assert sorted(expected - received) == []
    page.close()


# A hidden tab, as the page sees one: headless Chromium never hides a page
# (a minimized window, a background tab, a hidden target and the lifecycle
# states all keep document.visibilityState "visible" and 60 frames a second),
# so the page's view of it is set at the DOM API, and every animation frame
# the page asks for is counted: a frame is what any drawing costs.
HIDDEN_TAB = """
window.__hidden = false;
Object.defineProperty(Document.prototype, "hidden", {
  get: () => window.__hidden, configurable: true,
});
Object.defineProperty(Document.prototype, "visibilityState", {
  get: () => (window.__hidden ? "hidden" : "visible"), configurable: true,
});
window.__setHidden = (hidden) => {
  window.__hidden = hidden;
  document.dispatchEvent(new Event("visibilitychange"));
};
window.__frames = 0;
const nativeFrame = window.requestAnimationFrame.bind(window);
window.requestAnimationFrame = (callback) => {
  window.__frames += 1;
  return nativeFrame(callback);
};
"""
HIDDEN_S = 5.0
# What the page shows: the value texts, and where each chart's drawn time axis ends.
SHOWN = """() => [
  [...document.querySelectorAll("[data-metric]")].map((e) => e.textContent),
  typeof Chart === "undefined" ? [] : Object.values(Chart.instances).map((c) => c.scales.x.max),
]"""


@pytest.mark.parametrize("path", ["/", "/display"])
def test_hidden_tab_draws_nothing_then_catches_up(
    kiosk: Stack, browser: Browser, path: str
) -> None:
    """While the tab is hidden readings still arrive, but the page asks for no frame and
    nothing it shows changes; shown again, it draws at once up to the newest reading."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.add_init_script(RECORD_READINGS)
    page.add_init_script(HIDDEN_TAB)
    page.goto(f"{kiosk.env['URL']}{path}")
    expect(value(page, "temperature_c")).not_to_have_text("—", timeout=20000)
    page.wait_for_function("() => window.__readings.length >= 2", timeout=15000)
    page.evaluate("window.__setHidden(true)")
    time.sleep(1.5)  # a frame asked for before the tab was hidden may still run
    frames, readings = page.evaluate("[window.__frames, window.__readings.length]")
    shown = page.evaluate(SHOWN)
    time.sleep(HIDDEN_S)
    assert page.evaluate("window.__readings.length") >= readings + 3, "readings kept coming"
    assert page.evaluate("window.__frames") == frames, "the hidden page asked for frames"
    assert page.evaluate(SHOWN) == shown, "the hidden page changed what it shows"

    newest = max(r[3] for r in page.evaluate("window.__readings"))
    page.evaluate("window.__setHidden(false)")
    page.wait_for_function(
        f"([before, newest]) => {{ const [texts, axes] = ({SHOWN})();"
        " return texts.some((t, i) => t !== before[0][i])"
        " && axes.every((end) => end >= newest * 1000); }",
        arg=[shown, newest],
        timeout=2500,  # one paced frame (1 s) and a margin: shown at once, not at the next reading
    )
    if path == "/":
        assert shown[1], "the dashboard has charts"
    page.close()


def test_settings_rename_hide_fahrenheit_everywhere(kiosk: Stack, browser: Browser) -> None:
    """Rename and °F chosen in the dashboard's dialog, another sensor hidden: the dashboard,
    /display and the CSV all show it."""
    url = kiosk.env["URL"]
    kiosk.start("producer-attic", ["-m", "producers"], SOURCE="attic")
    wait_for_sensors(url, 2)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    problems = Problems(page)
    page.goto(f"{url}/")
    panel = page.locator(f'[data-sensor="{SOURCE}/demo"]')
    expect(value(page, "temperature_c")).not_to_have_text("—", timeout=20000)
    expect(page.locator('[data-sensor="attic/demo"]')).to_be_visible(timeout=20000)

    panel.get_by_role("button", name="Settings").click()
    dialog = page.locator("#settings-dialog")
    dialog.get_by_label("Name").fill("Living room")
    dialog.get_by_label("Temperature in").select_option(label="°F")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    panel = page.locator(f'[data-sensor="{SOURCE}/demo"]')
    expect(panel.locator(".sensor-name")).to_have_text("Living room", timeout=10000)
    card = page.locator(f'[data-card="{SOURCE}/demo/temperature_c"]')
    expect(card.locator(".card-unit")).to_have_text("°F")
    # The demo room is near 21 °C: about 70 °F.
    assert 55 < float(value(page, "temperature_c").inner_text()) < 90
    expect(card.locator(".card-unit")).to_have_text("°F")

    hide = {"hidden": True}
    request = page.request.put(f"{url}/api/sensors/attic/demo/settings", data=hide)
    assert request.ok
    page.reload()
    expect(value(page, "temperature_c")).not_to_have_text("—", timeout=20000)
    assert page.locator('[data-sensor="attic/demo"]').count() == 0
    expect(page.locator("#hidden-sensors")).to_contain_text("attic/demo")
    csv_href = panel.locator(".sensor-export").get_attribute("href")
    problems.check()

    display = browser.new_page(viewport={"width": 800, "height": 480})
    open_display(display, url)
    tile = display.locator(f'[data-tile="{SOURCE}/demo/temperature_c"]')
    expect(tile.locator(".tile-sensor")).to_have_text("Living room")
    expect(tile.locator(".tile-unit")).to_have_text("°F")
    assert 55 < float(value(display, "temperature_c").inner_text()) < 90
    assert display.locator('[data-tile^="attic/"]').count() == 0

    exported = page.request.get(f"{url}/{csv_href}").text()
    lines = exported.splitlines()
    assert lines[0] == "ts,time_utc,source,sensor,name,seq,metric,value,unit"
    temperatures = [line.split(",") for line in lines[1:] if ",temperature_c," in line]
    assert temperatures
    assert {row[4] for row in temperatures} == {"Living room"}
    assert {row[-1] for row in temperatures} == {"°F"}
    everything = page.request.get(f"{url}/api/export.csv?display=1").text()
    assert "attic" not in everything
    display.close()
    page.close()


def test_kiosk_token_once_then_live_without_it(
    tmp_path: Path, redis_url: str, browser: Browser
) -> None:
    """`/display?token=<VIEW_TOKEN>`: no login form, the token leaves the URL, values live."""
    view = "kiosk-view-token-0123456789"
    stack = Stack.create(
        tmp_path,
        {
            "REDIS_URL": redis_url,
            "INTERVAL": "0.5",
            "WEB_WORKERS": "1",
            "SENSORS": "demo",
            "SOURCE": SOURCE,
            "ACCESS_TOKEN": "full-token-0123456789abcdef",
            "VIEW_TOKEN": view,
        },
    )
    try:
        stack.start("recorder", ["-m", "recorder"])
        stack.start("producer", ["-m", "producers"])
        url = stack.start_web()
        page = browser.new_page(viewport={"width": 800, "height": 480})
        problems = Problems(page)
        page.goto(f"{url}/display?token={view}&dim=23:00-06:00")
        expect(page).to_have_url(f"{url}/display?dim=23%3A00-06%3A00")
        expect(value(page, "pressure_hpa")).not_to_have_text("—", timeout=20000)
        expect(page.locator("#connection")).to_have_attribute("data-state", "live")
        wait_for_a_change(page)
        page.reload()
        expect(page).to_have_url(f"{url}/display?dim=23%3A00-06%3A00")
        expect(value(page, "temperature_c")).not_to_have_text("—", timeout=20000)
        problems.check()
        page.close()
    finally:
        stack.stop_all()
