"""The installable app: manifest, icons, a service worker that keeps the shell, never data."""

from __future__ import annotations

import json
import re

import pytest
from browser_support import Problems, chromium, wait_for_sensors
from playwright.sync_api import expect


def _shell(client) -> list[str]:
    body = client.get("/sw.js").get_data(as_text=True)
    return json.loads(re.search(r"const SHELL = (.*);", body).group(1))


def test_manifest_names_icons_that_exist(client) -> None:
    answer = client.get("/manifest.webmanifest")
    assert answer.status_code == 200
    assert answer.mimetype == "application/manifest+json"
    manifest = answer.get_json(force=True)
    assert manifest["start_url"] == "./"
    assert manifest["display"] == "standalone"
    sizes = {icon["sizes"] for icon in manifest["icons"]}
    assert {"192x192", "512x512"} <= sizes
    assert any(icon.get("purpose") == "maskable" for icon in manifest["icons"])
    for icon in manifest["icons"]:
        with client.get(f"/{icon['src']}") as answer:
            assert answer.status_code == 200, icon["src"]


def test_service_worker_shell_is_pages_and_code_only(client) -> None:
    answer = client.get("/sw.js")
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-cache"
    shell = _shell(client)
    assert "./" in shell
    assert "display" in shell
    assert "static/js/main.js" in shell
    assert "static/js/display.js" in shell
    for path in shell:
        assert not path.startswith(("api", "stream", "static/pwa")), path
        with client.get("/" if path == "./" else f"/{path}") as answer:
            assert answer.status_code == 200, path


def test_manifest_and_worker_need_no_token(make_settings) -> None:
    from web import create_app

    app = create_app({"TESTING": True, "SETTINGS": make_settings(ACCESS_TOKEN="x" * 24)})
    client = app.test_client()
    assert client.get("/manifest.webmanifest").status_code == 200
    assert client.get("/sw.js").status_code == 200
    assert client.get("/api/sensors").status_code == 401


@pytest.mark.browser
@pytest.mark.parametrize(("path", "badge"), [("/", "#connection"), ("/display", "#connection")])
def test_opens_offline_and_says_so(stack, path: str, badge: str) -> None:
    """After one visit the page opens with no network, says it is offline, and cached no data."""
    wait_for_sensors(stack.url)
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 800, "height": 480})
        page = context.new_page()
        problems = Problems(page)
        page.goto(f"{stack.url}{path}")
        expect(page.locator("[data-metric]").first).not_to_have_text("—", timeout=20000)
        page.wait_for_function(
            "async () => (await navigator.serviceWorker.ready)"
            " && Boolean(navigator.serviceWorker.controller)",
            timeout=15000,
        )
        problems.check()
        context.set_offline(True)
        page.reload()
        expect(page.locator(badge)).to_have_attribute("data-state", "offline", timeout=15000)
        expect(page.locator(badge)).to_contain_text("Offline")
        cached = page.evaluate(
            "async () => (await Promise.all((await caches.keys()).map(async (name) =>"
            " (await (await caches.open(name)).keys())"
            ".map((r) => new URL(r.url).pathname)))).flat()"
        )
        assert path in cached
        assert [url for url in cached if url.startswith(("/api", "/stream"))] == []
        context.close()
