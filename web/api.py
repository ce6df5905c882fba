"""The JSON and CSV API over the history (docs/architecture.md, "HTTP interface")."""

from __future__ import annotations

import csv
import io
import logging
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import redis
from flask import Blueprint, Response, jsonify, request

from shared import store
from shared.reading import UNITS, Reading, unit_of
from web import db, params, sensor_settings, worker

logger = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix="/api")

HOUR = 3600.0
DAY = 86400.0
MAX_RAW_SPAN = 31 * DAY
MAX_SERIES_SPAN = 400 * DAY
READINGS_LIMIT = params.Bounds(default=1000, low=1, high=10_000)
SERIES_POINTS = params.Bounds(default=300, low=1, high=5000)
# The unit table for the browser, in display order (its one source: shared/reading.py).
UNITS_JSON = {
    suffix: {"symbol": u.symbol, "digits": u.digits, "label": u.label}
    for suffix, u in UNITS.items()
}


@bp.get("/sensors")
def sensors() -> Response:
    """Every known source/sensor with its metrics, last values and last error."""
    latest = {e.reading.key: e.reading for e in db.read(store.latest)}
    hub = worker.started_hub()
    if hub is not None:
        for key, data in hub.latest.items():
            live = Reading.from_json(data)
            if key not in latest or live.ts >= latest[key].ts:
                latest[key] = live
    errors = _sensor_errors()
    entries = [_sensor_entry(r, errors.get(k)) for k, r in sorted(latest.items())]
    return jsonify(sensors=sensor_settings.decorate(entries), units=UNITS_JSON)


def _sensor_errors() -> dict[tuple[str, str], dict[str, object]]:
    try:
        return worker.bus().sensor_errors()
    except redis.RedisError as exc:
        logger.warning("sensor errors unavailable: %s", exc)
        return {}


def _sensor_entry(reading: Reading, error: dict[str, object] | None) -> dict[str, object]:
    return {
        "source": reading.source,
        "sensor": reading.sensor,
        "metrics": {
            name: {"last": value, "unit": unit_of(name)} for name, value in reading.values.items()
        },
        "last_seen": reading.ts,
        "last_error": str(error["error"]) if error else None,
    }


def _selection() -> Callable[[sqlite3.Connection], list[Reading]]:
    """The query of the request's selection (parameters checked here, on the hub)."""
    since, until = params.time_range(request.args, HOUR, MAX_RAW_SPAN)
    sources = sorted(params.names(request.args, "source") or ())
    sensors = sorted(params.names(request.args, "sensor") or ())
    limit = params.integer(request.args, "limit", READINGS_LIMIT)
    return lambda conn: store.query_readings(
        conn, sources=sources, sensors=sensors, since=since, until=until, limit=limit
    )


@bp.get("/readings")
def readings() -> Response:
    """Raw readings, oldest first."""
    query = _selection()
    # Encoded in the read's thread too, one reading per call: one json.dumps
    # of 10,000 readings would hold the GIL (and so the hub) for its whole run.
    body = db.read(lambda conn: '{"readings":[' + ",".join(r.to_json() for r in query(conn)))
    return Response(body + "]}", mimetype="application/json")


@bp.get("/series")
def series() -> Response:
    """One metric, downsampled to buckets of min/avg/max/n."""
    source = params.required_name(request.args, "source")
    sensor = params.required_name(request.args, "sensor")
    metric = params.metric(request.args)
    since, until = params.time_range(request.args, HOUR, MAX_SERIES_SPAN)
    points = params.integer(request.args, "points", SERIES_POINTS)
    buckets = db.read(
        lambda conn: store.series(
            conn,
            source=source,
            sensor=sensor,
            metric=metric,
            since=since,
            until=until,
            points=points,
        )
    )
    return jsonify(
        source=source,
        sensor=sensor,
        metric=metric,
        buckets=[{"t": b.t, "min": b.min, "avg": b.avg, "max": b.max, "n": b.n} for b in buckets],
    )


@bp.get("/export.csv")
def export_csv() -> Response:
    """The /api/readings selection as CSV, one row per metric value."""
    query = _selection()
    display = sensor_settings.wants_display(request.args)

    def build(conn: sqlite3.Connection) -> str:
        header: list[str] = ["ts", "time_utc", "source", "sensor", "seq", "metric", "value"]
        cells: Iterator[list[object]] = _csv_rows(query(conn))
        if display:
            chosen = sensor_settings.load_chosen(conn)
            header, cells = sensor_settings.display_csv(header, cells, chosen)
        return "".join(_csv_lines(header, cells))

    # Built in the read's thread: the rows' Python work stays off the hub.
    body = db.read(build)
    headers = {"Content-Disposition": 'attachment; filename="readings.csv"'}
    return Response(body, mimetype="text/csv", headers=headers)


def _csv_lines(header: list[str], cells: Iterator[list[object]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in cells:
        writer.writerow(row)
        if buffer.tell() > 65536:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _csv_rows(rows: list[Reading]) -> Iterator[list[object]]:
    for r in rows:
        when = datetime.fromtimestamp(r.ts, UTC).isoformat(timespec="milliseconds")
        for metric, value in r.values.items():
            # Names are [A-Za-z0-9._-]; a leading "-" could still be read as a
            # formula by a spreadsheet, so quote it as text.
            yield [r.ts, when, _cell(r.source), _cell(r.sensor), r.seq, metric, value]


def _cell(name: str) -> str:
    return "'" + name if name.startswith("-") else name
