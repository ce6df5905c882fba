"""Render the app icons (web/static/icons/*.png) from favicon.svg with Chromium.

Run once after changing the logo: `.venv/bin/python scripts/render_icons.py`.
The PNGs are committed: a phone installing the dashboard needs 192 and 512 px
raster icons, and a maskable one with the logo inside the safe zone.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from playwright.sync_api import sync_playwright

STATIC = Path(__file__).resolve().parent.parent / "web" / "static"
# (file, size in px, maskable): maskable icons keep the logo within the middle
# 80% (the safe zone a launcher may crop to) on a full-bleed background.
ICONS = [
    ("icon-192.png", 192, False),
    ("icon-512.png", 512, False),
    ("icon-maskable-512.png", 512, True),
]


def page_html(svg: str, size: int, maskable: bool) -> str:
    """A page that is exactly the icon."""
    inner = int(size * 0.72) if maskable else size
    background = "#0f766e" if maskable else "transparent"
    sized = svg.replace("<svg ", f'<svg width="{inner}" height="{inner}" ', 1)
    return (
        f"<body style='margin:0;width:{size}px;height:{size}px;display:grid;place-items:center;"
        f"background:{background}'>{sized}</body>"
    )


def main() -> None:
    """Write every icon."""
    svg = (STATIC / "favicon.svg").read_text()
    out = STATIC / "icons"
    out.mkdir(exist_ok=True)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for name, size, maskable in ICONS:
            page = browser.new_page(viewport={"width": size, "height": size})
            page.set_content(page_html(svg, size, maskable))
            page.screenshot(path=str(out / name), omit_background=not maskable)
            page.close()
        browser.close()


if __name__ == "__main__":
    main()
