"""The dashboard page, health and readiness, and headers every response gets."""

from __future__ import annotations

import time

import redis
from flask import Blueprint, Flask, Response, jsonify, render_template, request

from shared import sensor_settings
from web import auth, db, worker
from web.peers import is_https

bp = Blueprint("pages", __name__)

# Sent only on requests that came over https (ignored on http anyway).
HSTS = "max-age=31536000"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)


@bp.get("/")
def index() -> str:
    """The dashboard."""
    return render_template(
        "index.html",
        can_edit=auth.can_write(),
        unit_choices=sensor_settings.unit_choices(),
        max_decimals=sensor_settings.MAX_DECIMALS,
    )


@bp.get("/display")
def display() -> str:
    """The kiosk page: large live values, no controls (docs/display.md)."""
    return render_template("display.html")


@bp.get("/healthz")
def healthz() -> Response:
    """The process answers."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Ready: the worker's Redis subscription is live and the history readable."""
    problems = []
    hub = worker.hub()
    if not hub.connected:
        problems.append("the Redis subscription is not live")
    try:
        db.read(lambda conn: conn.execute("SELECT 1 FROM sensors LIMIT 1").fetchall())
    except db.HistoryUnavailable as exc:
        problems.append(str(exc))
    try:
        bus = worker.bus()
        recorder = {**bus.recorder_lag(), **bus.recorder_storage()}
    except redis.RedisError:
        recorder = None
    # The recorder's lag and whether it can write the history are reported,
    # not judged: a stalled recorder must not take every web replica out of
    # the load balancer (the live dashboard still works without it).
    body = {
        "ready": not problems,
        "recorder": recorder,
        "problems": problems,
        "last_event_age_s": round(time.time() - hub.stats.last_received, 3)
        if hub.stats.last_received
        else None,
    }
    return jsonify(body), 200 if not problems else 503


def security_headers(response: Response) -> Response:
    """Strict defaults: no inline script, no sniffing, no framing, no referrer."""
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if request.path.startswith("/api/") or request.path == "/metrics":
        # Sensor data and exports: never kept by a browser or a shared cache.
        response.headers["Cache-Control"] = "no-store"
    if is_https():
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    return response


def init_app(app: Flask) -> None:
    """Register the page routes and the headers."""
    app.register_blueprint(bp)
    app.after_request(security_headers)
