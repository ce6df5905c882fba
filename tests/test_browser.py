"""The dashboard in a real browser: Debian's Chromium driven by Playwright.

Against the running stack (redis-server, recorder, demo producer, `python -m web`):
live values move, the range selector redraws the charts from /api/series,
nothing breaks the Content-Security-Policy, hostile text stays text, and a
phone does not scroll sideways. The desktop run saves a screenshot
(docs/screenshot.png when UPDATE_SCREENSHOT=1).
"""

from __future__ import annotations

import math
import os
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import Problems, chromium, get_json, is_stream
from playwright.sync_api import Browser, Page, expect

from shared import store
from shared.bus import Bus, connect
from shared.events import Event
from shared.reading import Reading

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
# The README's picture is refreshed on request; a plain run leaves the tree clean.
SCREENSHOT = ROOT / (
    "docs/screenshot.png" if os.environ.get("UPDATE_SCREENSHOT") else "artifacts/screenshot.png"
)
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>&amp;'


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, with nothing that phones home."""
    with chromium() as browser:
        yield browser


def wait_for_sensor(base_url: str, timeout: float = 30.0) -> dict:
    """The first sensor /api/sensors reports, once the producer's readings arrive."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sensors = get_json(f"{base_url}/api/sensors")["sensors"]
        if sensors:
            return sensors[0]
        time.sleep(0.25)
    raise AssertionError("no sensor appeared on /api/sensors")


# How far a metric of each unit swings over a day, for the seeded history.
SWING = {"c": 1.5, "pct": 4.0, "hpa": 2.5, "rpm": 60.0, "w": 3.0}


def history_values(metric: str, last: float, times: list[float], rng: random.Random) -> list:
    """Plausible past values ending at today's: a daily cycle plus a mean-reverting drift."""
    swing = SWING.get(metric.rsplit("_", 1)[-1], max(abs(last) * 0.05, 0.5))
    drift, values = 0.0, []
    for ts in times:
        drift += -0.02 * drift + rng.gauss(0, swing * 0.03)
        day = math.sin(2 * math.pi * ((ts % 86400) / 86400 - 11 / 24))
        values.append(swing * day + drift)
    offset = last - values[-1]
    return [round(v + offset, 2) for v in values]


def seed_history(database_path: Path, sensor: dict) -> int:
    """A day of readings before now, seq-less so they never clash with the producer's seq."""
    rng = random.Random(7)
    end = time.time() - 5
    # One reading every 30 s over the day, then one every 2 s for the live window.
    times = [end - 86400 + 30 * i for i in range(2850)]
    times += [end - 900 + 2 * i for i in range(451)]
    series = {
        name: history_values(name, info["last"], times, rng)
        for name, info in sensor["metrics"].items()
    }
    events = [
        Event(
            None,
            Reading(
                source=sensor["source"],
                sensor=sensor["sensor"],
                ts=ts,
                values={name: values[i] for name, values in series.items()},
            ),
        )
        for i, ts in enumerate(times)
    ]
    conn = store.connect(database_path)
    try:
        store.init_db(conn)
        return store.insert_events(conn, events)
    finally:
        conn.close()


def value_text(page: Page, selector: str) -> str:
    return page.locator(selector).first.inner_text()


def test_dashboard_live_history_and_csp(stack, browser: Browser) -> None:
    """Live values move, 24 h redraws from history, no console error or CSP violation."""
    first = wait_for_sensor(stack.url)
    source, sensor = first["source"], first["sensor"]
    seed_history(Path(stack.database_path), first)
    metric = "temperature_c" if "temperature_c" in first["metrics"] else sorted(first["metrics"])[0]
    value = f'[data-metric="{source}/{sensor}/{metric}"]'
    chart = f'[data-chart="{source}/{sensor}"]'

    page = browser.new_page(viewport=DESKTOP, color_scheme="dark")
    problems = Problems(page)
    page.goto(f"{stack.url}/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=15000)
    expect(page.locator("#dashboard")).to_have_attribute("data-ready", "true", timeout=15000)
    expect(page.locator(chart)).to_have_attribute("data-state", "ready")

    # A live value changes: some metric of this sensor shows a new number.
    cards = page.locator(f'[data-metric^="{source}/{sensor}/"]')
    before = cards.all_inner_texts()
    page.wait_for_function(
        "([sel, before]) => [...document.querySelectorAll(sel)].map(e => e.textContent)"
        ".some((t, i) => t !== before[i])",
        arg=[f'[data-metric^="{source}/{sensor}/"]', before],
        timeout=15000,
    )
    assert math.isfinite(float(value_text(page, value).replace(",", "")))

    # The live view was backfilled: the seeded 15 minutes are on the chart.
    assert int(page.locator(chart).get_attribute("data-points")) > 100
    # 24 h: the charts are fetched again and drawn with the day's buckets.
    draws = int(page.locator(chart).get_attribute("data-draws"))
    page.locator("#range label", has_text="24 h").click()  # what a person clicks
    expect(page.get_by_role("radio", name="24 h")).to_be_checked()
    expect(page.locator(chart)).to_have_attribute("data-range", "24h")
    expect(page.locator(chart)).to_have_attribute("data-state", "ready", timeout=15000)
    assert int(page.locator(chart).get_attribute("data-draws")) > draws
    assert int(page.locator(chart).get_attribute("data-points")) > 100
    assert "range=24h" in page.url
    # The README's picture: a day of history with its min/max band, live values on top.
    SCREENSHOT.parent.mkdir(exist_ok=True)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))

    problems.check()
    page.close()


def test_hostile_text_is_shown_as_text(stack, browser: Browser) -> None:
    """A producer's error string full of markup appears literally, and runs nothing."""
    bus = Bus(connect(stack.redis_url))
    reading = Reading(
        source="hostile-probe", sensor="markup", ts=time.time(), seq=1, values={"probe_c": 1.5}
    )
    bus.publish(reading)
    bus.report_error("hostile-probe", "markup", HOSTILE, time.time())
    deadline = time.monotonic() + 15
    while not any(
        s["source"] == "hostile-probe" for s in get_json(f"{stack.url}/api/sensors")["sensors"]
    ):
        assert time.monotonic() < deadline, "the probe reading never reached /api/sensors"
        time.sleep(0.25)

    page = browser.new_page(viewport=DESKTOP)
    problems = Problems(page)
    page.goto(f"{stack.url}/")
    panel = page.locator('[data-sensor="hostile-probe/markup"]')
    expect(panel.locator(".sensor-error-text")).to_have_text(HOSTILE, timeout=15000)
    expect(panel.locator('[data-metric="hostile-probe/markup/probe_c"]')).to_have_text("1.5")
    assert page.locator(".sensor-error img, .sensor-error script").count() == 0
    assert page.evaluate("window.__pwned") is None
    problems.check()
    page.close()


def test_hostile_names_from_the_api_stay_text(stack, browser: Browser) -> None:
    """Names the server would refuse still render as text if they ever arrived."""
    body = {
        "sensors": [
            {
                "source": HOSTILE,
                "sensor": "<b>bold</b>",
                "metrics": {"<i>x</i>_c": {"last": 1.0, "unit": "<u>c</u>"}},
                "last_seen": time.time(),
                "last_error": HOSTILE,
            }
        ]
    }
    page = browser.new_page(viewport=DESKTOP)
    problems = Problems(page)
    page.route("**/api/sensors", lambda route: route.fulfill(json=body))
    page.route("**/api/series?*", lambda route: route.fulfill(json={"buckets": []}))
    page.goto(f"{stack.url}/")
    for text in (HOSTILE, "<b>bold</b>", "<i>x</i>_c"):
        expect(page.get_by_text(text, exact=True).first).to_be_visible(timeout=15000)
    assert page.locator("main img, main script, main b, main i, main u").count() == 0
    assert page.evaluate("window.__pwned") is None
    problems.check()
    page.close()


def test_units_come_from_the_api(stack, browser: Browser) -> None:
    """The page formats with the unit table /api/sensors serves, not a copy of its own."""
    wait_for_sensor(stack.url)
    page = browser.new_page(viewport=DESKTOP)
    problems = Problems(page)

    def renamed(route) -> None:
        response = route.fetch()
        body = response.json()
        body["units"]["c"]["symbol"] = "°Q"
        body["units"]["pct"]["digits"] = 3
        route.fulfill(response=response, json=body)

    page.route("**/api/sensors", renamed)
    page.goto(f"{stack.url}/")
    card = page.locator('[data-card="test-host/demo/temperature_c"]')
    expect(card.locator(".card-unit")).to_have_text("°Q", timeout=15000)
    humidity = page.locator('[data-metric="test-host/demo/humidity_pct"]')
    expect(humidity).to_have_text(re.compile(r"^\d+\.\d{3}$"), timeout=15000)
    problems.check()
    page.close()


def test_phone_layout_does_not_scroll_sideways(stack, browser: Browser) -> None:
    """At 390 px wide every card and chart fits: no horizontal scrolling."""
    wait_for_sensor(stack.url)
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True)
    page = context.new_page()
    problems = Problems(page)
    page.goto(f"{stack.url}/")
    expect(page.locator("#dashboard")).to_have_attribute("data-ready", "true", timeout=15000)
    expect(page.locator("[data-metric]").first).not_to_have_text("—", timeout=15000)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    box = page.locator("#range").bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= PHONE["width"]
    problems.check()
    context.close()


def test_unreachable_stream_is_shown_and_retried(stack, browser: Browser) -> None:
    """A /stream that fails says so, with a countdown; "Retry now" brings it back live."""
    wait_for_sensor(stack.url)
    page = browser.new_page(viewport=DESKTOP)
    refused: list[str] = []

    def down(route) -> None:
        refused.append(route.request.url)
        route.fulfill(status=503, body="down")

    # A 503 makes EventSource give up for good (CLOSED): the page must retry by itself.
    page.route(is_stream, down)
    page.goto(f"{stack.url}/")
    connection = page.locator("#connection")
    expect(connection).to_have_attribute("data-state", "offline", timeout=15000)
    expect(connection).to_contain_text("Server unreachable, retrying")
    retry = connection.get_by_role("button", name="Retry now")
    expect(retry).to_be_visible()
    # After four refusals the page's own next try is 4-8 s away (doubling backoff),
    # so it is the click, not the timer, that brings the stream back.
    deadline = time.monotonic() + 30
    while len(refused) < 4:
        assert time.monotonic() < deadline, f"the page retried {len(refused)} times"
        page.wait_for_timeout(200)
    expect(connection.locator(".connection-countdown")).to_contain_text(" s")
    page.unroute(is_stream)
    retry.click()
    expect(connection).to_have_attribute("data-state", "live", timeout=15000)
    expect(connection.locator(".connection-text")).to_have_text("Live")
    expect(retry).to_be_hidden()
    page.close()


def test_reset_event_reloads_history(stack, browser: Browser) -> None:
    """`event: reset` (the server lost our place) makes the page fetch sensors and history again."""
    sensor = wait_for_sensor(stack.url)
    chart = f'[data-chart="{sensor["source"]}/{sensor["sensor"]}"]'
    page = browser.new_page(viewport=DESKTOP)
    problems = Problems(page)
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))
    # One reset, then a long retry so the browser does not come back for more.
    page.route(
        is_stream,
        lambda route: route.fulfill(
            status=200,
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
            body='retry: 600000\n: hello\n\nevent: reset\ndata: {"reason": "trimmed"}\n\n',
        ),
    )
    page.goto(f"{stack.url}/")
    expect(page.locator("#dashboard")).to_have_attribute("data-ready", "true", timeout=15000)
    page.wait_for_function(
        "() => performance.getEntriesByType('resource')"
        ".filter(e => e.name.includes('/api/sensors')).length >= 2",
        timeout=15000,
    )
    expect(page.locator(chart)).to_have_attribute("data-state", "ready", timeout=15000)
    series = [url for url in fetched if "/api/series" in url]
    assert len(series) >= 2 * len(sensor["metrics"])
    problems.check()
    page.close()


def test_login_then_live_dashboard_then_logout(browser: Browser, tmp_path: Path, redis_url) -> None:
    """With ACCESS_TOKEN set: the login form, then live values over the cookie, then out."""
    from devtools.stack import Stack

    token = "correct-horse-battery-staple-42"
    stack = Stack.create(
        tmp_path,
        {
            "REDIS_URL": redis_url,
            "INTERVAL": "0.25",
            "SENSORS": "demo",
            "SOURCE": "guarded",
            "ACCESS_TOKEN": token,
            "HEARTBEAT_INTERVAL": "1",
        },
    )
    try:
        stack.start("recorder", ["-m", "recorder"])
        stack.start("producer", ["-m", "producers"])
        url = stack.start_web()
        page = browser.new_page(viewport=DESKTOP)
        problems = Problems(page)
        page.goto(f"{url}/")
        expect(page).to_have_url(f"{url}/login")
        page.fill("#token", "wrong")
        page.click("button[type=submit]")
        expect(page.locator(".login-error")).to_have_text("That token is not right.")
        page.fill("#token", token)
        page.click("button[type=submit]")
        expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=20000)
        value = page.locator('[data-metric="guarded/demo/temperature_c"]')
        expect(value).not_to_be_empty(timeout=20000)
        first = value.text_content()
        pressure = page.locator('[data-metric="guarded/demo/pressure_hpa"]')
        before = pressure.text_content()
        expect(pressure).not_to_have_text(before or "", timeout=20000)
        assert first
        page.click(".logout button")
        expect(page).to_have_url(f"{url}/login")
        # The wrong token's 401 is the one expected failure on this page.
        problems.items = [p for p in problems.items if "401" not in p]
        problems.check()
        page.close()
    finally:
        stack.stop_all()
