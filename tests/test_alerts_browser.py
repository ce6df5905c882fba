"""Alerts in a real browser: a firing alert shows on an open dashboard within a second,
its threshold is drawn on the chart, and it goes away when it resolves."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from playwright.sync_api import Browser, Page, expect

from devtools.redis_server import free_port
from devtools.stack import ROOT, Stack
from shared.bus import Bus
from shared.reading import Reading
from tests.browser_support import Problems, chromium, wait_for_sensors

# serial: "within a second" is measured.
pytestmark = [pytest.mark.browser, pytest.mark.serial]

RULES = """
[[rule]]
name = "pi-hot"
metric = "pi/pi_cpu/cpu_temp_c"
above = 80.0
clear = 75.0
"""
METRIC = "pi/pi_cpu/cpu_temp_c"
ALERT = f'#alerts li[data-alert="pi-hot|{METRIC}"]'
CANVAS = 'section[data-sensor="pi/pi_cpu"] canvas'


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


# Nothing listens there: every notification fails, which the page must show.
DEAD_PORT = free_port()


@pytest.fixture
def alerting_stack(tmp_path: Path, redis_url: str) -> Iterator[tuple[str, Bus]]:
    rules = tmp_path / "alerts.toml"
    rules.write_text(RULES)
    stack = Stack.create(
        tmp_path,
        {
            "REDIS_URL": redis_url,
            "ALERTS_FILE": str(rules),
            "ALERT_URLS": f"json://user:s3cret@127.0.0.1:{DEAD_PORT}/hook",
            "HEARTBEAT_INTERVAL": "1",
        },
        log_dir=tmp_path / "logs",
    )
    client = redis.Redis.from_url(redis_url)
    try:
        stack.start("recorder", ["-m", "recorder"])
        url = stack.start_web()
        yield url, Bus(client)
    finally:
        client.close()
        stack.stop_all()


class Pi:
    """A Pi's CPU temperature, published as its producer would."""

    def __init__(self, bus: Bus) -> None:
        self.bus, self.seq = bus, 0

    def send(self, value: float) -> None:
        self.seq += 1
        reading = Reading(
            source="pi", sensor="pi_cpu", ts=time.time(), seq=self.seq, values={"cpu_temp_c": value}
        )
        assert self.bus.publish(reading) is not None


def wait_for_alert_message(pubsub: redis.client.PubSub, kind: str) -> None:
    """Until the recorder has published the transition (the dashboard's clock starts here)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)
        data = message["data"] if message else b""
        if b'"type":"alert"' in data and json.loads(data)["data"]["kind"] == kind:
            return
    raise AssertionError(f"the recorder published no {kind} alert")


def test_a_firing_alert_appears_within_a_second_with_its_threshold_line(
    browser: Browser, alerting_stack: tuple[str, Bus]
) -> None:
    url, bus = alerting_stack
    pi = Pi(bus)
    for value in (70.0, 70.5, 71.0):
        pi.send(value)
    wait_for_sensors(url)
    page: Page = browser.new_page(viewport={"width": 1280, "height": 800})
    problems = Problems(page)
    page.goto(url)
    expect(page.locator("#dashboard")).to_have_attribute("data-ready", "true", timeout=20_000)
    expect(page.locator(f'[data-metric="{METRIC}"]')).to_have_text("71.0")
    # The rule's line is on the chart before anything fires (the axis makes room for it).
    expect(page.locator(CANVAS)).to_have_attribute("data-thresholds", "pi-hot@80")
    expect(page.locator("#alerts")).to_be_hidden()

    pubsub = bus.client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(bus.channel)
    sent = time.monotonic()
    pi.send(85.0)
    wait_for_alert_message(pubsub, "firing")
    evaluated = time.monotonic()
    expect(page.locator(ALERT)).to_be_visible(timeout=1000)
    shown = time.monotonic()
    expect(page.locator(ALERT)).to_contain_text("pi-hot")
    expect(page.locator(ALERT)).to_contain_text(f"{METRIC} 85 (above 80) since")
    expect(page.locator(f'[data-card="{METRIC}"]')).to_have_attribute("data-alert", "firing")
    expect(page.locator(CANVAS)).to_have_attribute("data-alert-markers", "1")
    # The notifier cannot deliver: the page says so shortly after, without the secret.
    failing = page.locator(".alerts-target")
    expect(failing).to_contain_text(f"Notifications to json://127.0.0.1:{DEAD_PORT} are failing")
    assert "s3cret" not in page.locator("#alerts").inner_text()
    page.screenshot(path=str(ROOT / "artifacts" / "alerts.png"))

    pi.send(74.0)
    wait_for_alert_message(pubsub, "resolved")
    resolved = time.monotonic()
    expect(page.locator(ALERT)).to_be_hidden(timeout=1000)
    # For the record (artifacts/, not committed): how long each leg took here.
    (ROOT / "artifacts").mkdir(exist_ok=True)
    (ROOT / "artifacts" / "alerts-latency.json").write_text(
        json.dumps(
            {
                "reading_to_transition_s": round(evaluated - sent, 3),
                "transition_to_page_s": round(shown - evaluated, 3),
                "resolution_to_page_s": round(time.monotonic() - resolved, 3),
            }
        )
    )
    expect(page.locator(f'[data-card="{METRIC}"]')).not_to_have_attribute("data-alert", "firing")
    expect(page.locator(CANVAS)).to_have_attribute("data-alert-markers", "2")
    pubsub.close()
    problems.check()
    page.close()
