"""Imported old readings show in the 1 y and All charts beside the live ones."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import Problems, chromium, get_json, wait_for_sensors
from playwright.sync_api import Browser, expect

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
DAY = 86400


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless."""
    with chromium() as browser:
        yield browser


def old_readings(sensor: dict, path: Path, days: int = 180) -> int:
    """Half a year of the live sensor's readings, one an hour, as JSON lines."""
    start = time.time() - days * DAY
    with path.open("w") as f:
        for i in range(days * 24 - 24):
            values = {m: round(20 + 5 * math.sin(i / 24), 2) for m in sensor["metrics"]}
            reading = {
                "source": sensor["source"],
                "sensor": sensor["sensor"],
                "ts": start + i * 3600,
            }
            f.write(json.dumps({**reading, "values": values}) + "\n")
    return days * 24 - 24


def test_imported_history_is_drawn_beside_live_readings(
    stack, browser: Browser, tmp_path: Path
) -> None:
    sensor = wait_for_sensors(stack.url)[0]
    path = tmp_path / "old.jsonl"
    count = old_readings(sensor, path)
    # The real command, while the recorder writes the same database.
    done = subprocess.run(
        [sys.executable, "-m", "recorder", "import", str(path)],
        cwd=ROOT,
        env={**os.environ, **stack.stack.env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"{count:,} readings added" in done.stdout
    metric = sorted(sensor["metrics"])[0]
    now = time.time()
    series = get_json(
        f"{stack.url}/api/series?source={sensor['source']}&sensor={sensor['sensor']}"
        f"&metric={metric}&since={now - 365 * DAY:.0f}&until={now:.0f}&points=500"
    )["buckets"]
    assert series[0]["t"] < now - 170 * DAY  # the imported past
    assert series[-1]["t"] > now - DAY  # and today's live readings, in one series

    page = browser.new_page(viewport={"width": 1280, "height": 800})
    problems = Problems(page)
    chart = f'[data-chart="{sensor["source"]}/{sensor["sensor"]}"]'
    for label, name in (("1 y", "1y"), ("All", "all")):
        page.goto(f"{stack.url}/?range={name}")
        expect(page.get_by_role("radio", name=label)).to_be_checked()
        expect(page.locator(chart)).to_have_attribute("data-state", "ready", timeout=15000)
        expect(page.locator(chart)).to_have_attribute("data-range", name)
        # Live readings alone would fill one bucket per metric; half a year fills hundreds.
        points = int(page.locator(chart).get_attribute("data-points"))
        assert points > 100 * len(sensor["metrics"])
    problems.check()
    page.close()
