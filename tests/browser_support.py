"""What the browser tests share: Debian's Chromium, a problem collector, CPU accounting."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Collected in the page before any of its own scripts run; Playwright's init
# scripts are not subject to the page's CSP.
WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"}`);
});
"""
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def chromium(*extra_args: str) -> Iterator[Browser]:
    """Debian's Chromium, headless, with nothing that phones home."""
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args]
        )
        try:
            yield browser
        finally:
            browser.close()


class Problems:
    """Console errors, uncaught exceptions and failed requests of one page."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.items: list[str] = []
        page.add_init_script(WATCH_CSP)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.items.append(f"uncaught: {error}"))
        page.on("response", self._response)

    def _console(self, message) -> None:
        if message.type == "error":
            self.items.append(f"console: {message.text}")

    def _response(self, response) -> None:
        # /stream is cut when the page closes; anything else failing is a bug.
        if response.status >= 400 and not is_stream(response.url):
            self.items.append(f"HTTP {response.status}: {response.url}")

    def check(self) -> None:
        """Fail with every problem seen, CSP violations included."""
        violations = self.page.evaluate("window.__cspViolations || []")
        assert self.items + [f"CSP: {v}" for v in violations] == []


def is_stream(url: str) -> bool:
    """The SSE endpoint (and not /static/js/stream.js)."""
    return urllib.parse.urlsplit(url).path == "/stream"


def get_json(url: str) -> dict:
    """GET a JSON document from the stack."""
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def wait_for_sensors(base_url: str, count: int = 1, timeout: float = 30.0) -> list[dict]:
    """The sensors /api/sensors reports, once at least `count` of them have readings."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sensors = get_json(f"{base_url}/api/sensors")["sensors"]
        if len(sensors) >= count:
            return sensors
        time.sleep(0.25)
    raise AssertionError(f"fewer than {count} sensors appeared on /api/sensors")


@dataclass
class BrowserCpu:
    """CPU time of one Chromium and every process it started, read from /proc."""

    marker: str

    @classmethod
    def launch_args(cls) -> tuple[BrowserCpu, str]:
        """A probe and the harmless extra switch that lets it find its browser."""
        marker = f"sensor-display-probe-{uuid.uuid4().hex}"
        # Chromium ignores switches it does not know; /proc shows them.
        return cls(marker), f"--{marker}"

    def seconds(self) -> float:
        """User + system CPU seconds of the browser's whole process tree so far."""
        return sum(_cpu_seconds(pid) for pid in self._tree())

    def _tree(self) -> set[int]:
        parents: dict[int, int] = {}
        roots: set[int] = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if self.marker.encode() in (entry / "cmdline").read_bytes():
                    roots.add(int(entry.name))
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        tree, grew = set(roots), True
        while grew:
            more = {pid for pid, ppid in parents.items() if ppid in tree} - tree
            tree |= more
            grew = bool(more)
        assert roots, "the probed Chromium is not running"
        return tree

    def share(self, window: float) -> float:
        """The browser's CPU over `window` wall seconds, in percent of one core."""
        start_cpu, start = self.seconds(), time.monotonic()
        time.sleep(window)
        used, elapsed = self.seconds() - start_cpu, time.monotonic() - start
        return 100.0 * used / elapsed


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0  # gone meanwhile
    # Fields 14 and 15 of proc(5) (utime, stime), counted after the ")".
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
