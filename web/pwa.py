"""The installable app: web manifest and service worker, served from the app's root.

Both live at the root (not /static) because a service worker controls only the
paths under its own URL, and the manifest's `./` start URL is read relative to
it. The worker's list of shell files is made here from what is on disk, so it
can never name a file that does not exist or miss one that does; its cache
name changes whenever one of them does.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path

from flask import Blueprint, Flask, Response, current_app

bp = Blueprint("pwa", __name__)

# What the shell is: the pages and the static files they load (no data, ever).
PAGES = ("./", "display")
SHELL_SUFFIXES = (".css", ".js", ".svg", ".png")
SHELL_FOLDERS = ("", "js", "icons", "vendor")


@bp.get("/manifest.webmanifest")
def manifest() -> Response:
    """The web manifest (name, start URL, icons)."""
    body = (_static() / "pwa" / "manifest.webmanifest").read_text()
    return Response(body, mimetype="application/manifest+json")


@bp.get("/sw.js")
def service_worker() -> Response:
    """The service worker, with the shell's file list and version written in front."""
    shell, version = _shell(_static())
    head = f"const SHELL = {json.dumps(shell)};\nconst VERSION = {json.dumps(version)};\n"
    body = head + (_static() / "pwa" / "sw.js").read_text()
    response = Response(body, mimetype="text/javascript")
    # Browsers check for a new worker on each visit; it must never be stale.
    response.headers["Cache-Control"] = "no-cache"
    return response


def _static() -> Path:
    return Path(current_app.static_folder or "")


@cache
def _shell(static: Path) -> tuple[list[str], str]:
    """The shell's URLs (relative to the app's root) and a hash of their contents."""
    files = sorted(
        path
        for folder in SHELL_FOLDERS
        if (static / folder).is_dir()
        for path in (static / folder).iterdir()
        if path.is_file() and path.suffix in SHELL_SUFFIXES
    )
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    urls = [*PAGES, *(f"static/{path.relative_to(static).as_posix()}" for path in files)]
    return urls, digest.hexdigest()[:16]


def init_app(app: Flask) -> None:
    """Register the two routes."""
    app.register_blueprint(bp)
