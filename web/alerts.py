"""GET /api/alerts: what is firing, the rules (for threshold lines), recent transitions,
and how notifications are getting through (docs/architecture.md, "Alerts").

The recorder writes all of it (the state in the history database, the
notifier's health in Redis); web only reads.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from typing import Any

import redis
from flask import Blueprint, Response, jsonify

from shared.alerts import targets_key
from web import db, worker

logger = logging.getLogger(__name__)

bp = Blueprint("alerts", __name__, url_prefix="/api")

# Transitions the dashboard gets for its chart markers: the longest range it shows.
TRANSITIONS_SPAN = 30 * 86400
TRANSITIONS_MAX = 500
_ORDER = "CASE state WHEN 'firing' THEN 0 WHEN 'pending' THEN 1 ELSE 2 END, rule, metric"


@bp.get("/alerts")
def alerts() -> Response:
    """Alert states (firing first), rules, transitions of the last 30 days, targets."""
    return jsonify(**db.read(_states), targets=targets())


def _states(conn: sqlite3.Connection) -> dict[str, list[Any]]:
    return dict(
        alerts=_rows(
            conn,
            f"SELECT rule, metric, state, since, value, reason FROM alert_state ORDER BY {_ORDER}",  # noqa: S608 - a constant
        ),
        rules=[
            json.loads(r["body"]) for r in _rows(conn, "SELECT body FROM alert_rules ORDER BY name")
        ],
        transitions=_rows(
            conn,
            "SELECT rule, metric, kind, reason, value, at FROM alert_transitions"
            " WHERE at >= ? AND NOT repeat ORDER BY id DESC LIMIT ?",
            (time.time() - TRANSITIONS_SPAN, TRANSITIONS_MAX),
        )[::-1],
    )


def openapi_schema() -> dict[str, Any]:
    """The response of /api/alerts, for /api/openapi.json."""
    number, text = {"type": "number"}, {"type": "string"}
    alert = {
        "type": "object",
        "required": ["rule", "metric", "state", "since", "value"],
        "properties": {
            "rule": text,
            "metric": text,
            "state": {"enum": ["ok", "pending", "firing"]},
            "since": number,
            "value": {"type": ["number", "null"]},
            "reason": text,
        },
    }
    listed = {"type": "array", "items": {"type": "object"}}
    return {
        "type": "object",
        "required": ["alerts", "rules", "transitions", "targets"],
        "properties": {
            "alerts": {"type": "array", "items": alert},
            "rules": listed,
            "transitions": listed,
            "targets": listed,
        },
    }


def _rows(conn: sqlite3.Connection, sql: str, args: tuple = ()) -> list[dict[str, Any]]:
    return [dict(row) for row in conn.execute(sql, args)]


def targets() -> list[dict[str, Any]]:
    """Each notification target's health as the recorder's notifier last reported it."""
    bus = worker.bus()
    try:
        raw = bus.client.hgetall(targets_key(bus.channel))
    except redis.RedisError as exc:
        logger.warning("alert targets unavailable: %s", exc)
        return []
    out = []
    for key, value in sorted(raw.items()):
        try:
            status = json.loads(value)
        except ValueError:
            continue
        if isinstance(status, dict):
            out.append({"id": key.decode(), **status})
    return out


def firing_count() -> int:
    """(rule, metric) pairs firing now, from the history database."""
    rows = db.read(
        lambda conn: _rows(conn, "SELECT count(*) AS n FROM alert_state WHERE state = 'firing'")
    )
    return int(rows[0]["n"]) if rows else 0


def _label(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


_TARGET_METRICS = (
    ("sent", "alert_notifications_sent_total", "counter", "notifications a target accepted"),
    ("failures", "alert_notification_failures_total", "counter", "failed attempts (each retried)"),
    (
        "given_up",
        "alert_notifications_given_up_total",
        "counter",
        "notifications dropped after a day",
    ),
    ("queued", "alert_notifications_queued", "gauge", "notifications waiting for a target"),
    ("ok", "alert_target_up", "gauge", "1 if the last attempt to a target succeeded"),
)


def render_metrics(firing: int, targets: list[dict[str, Any]]) -> str:
    """The alert part of /metrics."""
    lines = [
        "# HELP sensor_display_alerts_firing (rule, metric) pairs firing now",
        "# TYPE sensor_display_alerts_firing gauge",
        f"sensor_display_alerts_firing {firing}",
    ]
    for key, name, kind, help_ in _TARGET_METRICS:
        lines += [f"# HELP sensor_display_{name} {help_}", f"# TYPE sensor_display_{name} {kind}"]
        for t in targets:
            target = _label(t.get("target", t["id"]))
            lines.append(f'sensor_display_{name}{{target="{target}"}} {float(t.get(key, 0)):g}')
    return "\n".join(lines) + "\n"
