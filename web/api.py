"""The JSON and CSV API over the history (DESIGN.md section 4)."""

from __future__ import annotations

import csv
import io
import json
import logging
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import islice

import redis
from flask import Blueprint, Response, jsonify, request

from shared import store
from shared.reading import Reading, unit_of
from web import params, sensor_settings
from web.db import get_db, open_db
from web.services import services

logger = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix="/api")

HOUR = 3600.0
DAY = 86400.0


@bp.get("/sensors")
def sensors() -> Response:
    """Every known source/sensor with its metrics, last values and last error."""
    latest = {e.reading.key: e.reading for e in store.latest(get_db())}
    svc = services()
    if svc.hub_started:
        for key, data in svc.hub().latest.items():
            live = Reading.from_json(data)
            if key not in latest or live.ts >= latest[key].ts:
                latest[key] = live
    errors = _sensor_errors()
    entries = [_sensor_entry(r, errors.get(k)) for k, r in sorted(latest.items())]
    return jsonify(sensors=sensor_settings.decorate(entries))


def _sensor_errors() -> dict[tuple[str, str], dict[str, object]]:
    try:
        return services().bus.sensor_errors()
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


def _filters() -> tuple[list[str], list[str], float, float]:
    """Sources, sensors and [since, until) of /api/readings and /api/export.csv: any span."""
    since, until = params.time_range(request.args, HOUR, params.MAX_TIME)
    sources = sorted(params.names(request.args, "source") or ())
    sensors = sorted(params.names(request.args, "sensor") or ())
    return sources, sensors, since, until


@bp.get("/readings")
def readings() -> Response:
    """Raw readings, oldest first, a page at a time: pass `next` back as `cursor`."""
    sources, sensors, since, until = _filters()
    limit = params.integer(request.args, "limit", 1000, 1, 10_000)
    cursor = request.args.get("cursor") or None
    try:
        page, after = store.page_readings(
            get_db(),
            sources=sources,
            sensors=sensors,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        )
    except store.BadCursor as exc:
        raise params.BadParameter("cursor", str(exc)) from None
    return jsonify(readings=[r.to_dict() for r in page], next=after)


@bp.get("/series")
def series() -> Response:
    """One metric, downsampled to buckets of min/avg/max/n from the finest tier covering it."""
    source = params.required_name(request.args, "source")
    sensor = params.required_name(request.args, "sensor")
    metric = params.metric(request.args)
    since, until = params.time_range(request.args, HOUR, params.MAX_TIME)
    points = params.integer(request.args, "points", 300, 1, 5000)
    buckets = store.series(
        get_db(),
        source=source,
        sensor=sensor,
        metric=metric,
        since=since,
        until=until,
        points=points,
    )
    return jsonify(
        source=source,
        sensor=sensor,
        metric=metric,
        buckets=[{"t": b.t, "min": b.min, "avg": b.avg, "max": b.max, "n": b.n} for b in buckets],
    )


TIERS = {"raw": 0, "1m": 1, "1h": 2}
EXPORT_MAX_LIMIT = 999_999_999
RAW_HEADER = ["ts", "time_utc", "source", "sensor", "seq", "metric", "value"]
ROLLUP_HEADER = ["t", "time_utc", "source", "sensor", "metric", "min", "avg", "max", "n"]


@bp.get("/export.csv")
def export_csv() -> Response:
    """Any range as CSV, streamed: raw values (one row each) or `tier=1m|1h` buckets."""
    sources, sensors, since, until = _filters()
    tier = request.args.get("tier", "raw")
    if tier not in TIERS:
        raise params.BadParameter("tier", "must be raw, 1m or 1h")
    # Optional: readings (or buckets) at most; by default the whole range.
    limit = params.integer(request.args, "limit", 0, 1, EXPORT_MAX_LIMIT) or None
    chosen = sensor_settings.load_chosen() if sensor_settings.wants_display(request.args) else None
    # The stream outlives the request context: it gets a connection of its own.
    conn = open_db()
    sids = store.sensor_ids(store.names(conn), sources, sensors)
    header, cells = _export_rows(conn, tier, sids, since, until, limit)
    if chosen is not None:
        header, cells = sensor_settings.display_csv(header, cells, chosen)
    name = "readings.csv" if tier == "raw" else f"readings-{tier}.csv"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    return Response(_csv_lines(header, cells, conn), mimetype="text/csv", headers=headers)


def _export_rows(
    conn: sqlite3.Connection,
    tier: str,
    sids: list[int],
    since: float,
    until: float,
    limit: int | None,
) -> tuple[list[str], Iterator[list[object]]]:
    """The CSV header and rows of one tier, lazily."""
    if tier == "raw":
        raw = islice(store.iter_raw(conn, sids, since, until), limit)
        return RAW_HEADER, _raw_rows(raw, store.names(conn))
    rollups = islice(store.iter_rollups(conn, TIERS[tier], sids, since, until), limit)
    return ROLLUP_HEADER, (_rollup_row(r) for r in rollups)


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def _raw_rows(raw: Iterator[store.RawRow], known: store.Names) -> Iterator[list[object]]:
    for ts, sid, seq, values in raw:
        source, sensor = known.keys[sid]
        when = _utc(ts)
        for metric, value in values.items():
            # Names are [A-Za-z0-9._-]; a leading "-" could still be read as a
            # formula by a spreadsheet, so quote it as text.
            yield [ts, when, _cell(source), _cell(sensor), seq, metric, value]


def _rollup_row(row: store.RollupRow) -> list[object]:
    t, source, sensor, metric, lo, avg, hi, n = row
    return [t, _utc(t), _cell(source), _cell(sensor), metric, lo, avg, hi, n]


def _csv_lines(
    header: list[str], rows: Iterator[list[object]], conn: sqlite3.Connection
) -> Iterator[str]:
    """CSV in chunks of about 64 KiB; memory stays flat whatever the range."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    try:
        for row in rows:
            writer.writerow(row)
            if buffer.tell() > 65536:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()
    finally:
        conn.close()


def _cell(name: str) -> str:
    return "'" + name if name.startswith("-") else name


def error_body(message: str) -> str:
    """The JSON error body every 4xx/5xx of the API uses."""
    return json.dumps({"error": message})
