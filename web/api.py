"""The JSON and CSV API over the history (docs/architecture.md, "HTTP interface")."""

from __future__ import annotations

import csv
import io
import json
import logging
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import redis
from flask import Blueprint, Response, current_app, jsonify, request

from shared import store
from shared.reading import UNITS, Reading, unit_of
from web import db, params, sensor_settings, worker

logger = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix="/api")

HOUR = 3600.0
DAY = 86400.0


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
    # Capped like the hub (MAX_SENSORS), so the answer has a bounded size.
    shown = sorted(latest.items())[: current_app.config["SETTINGS"].max_sensors]
    entries = [_sensor_entry(r, errors.get(k)) for k, r in shown]
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


def _filters() -> tuple[list[str], list[str], float, float]:
    """Sources, sensors and [since, until) of /api/readings and /api/export.csv: any span."""
    since, until = params.time_range(request.args, HOUR, params.MAX_TIME)
    sources = sorted(params.names(request.args, "source") or ())
    sensors = sorted(params.names(request.args, "sensor") or ())
    return sources, sensors, since, until


def _cursor() -> str | None:
    """The `cursor` of /api/readings, checked here (on the hub) so a bad one is a 400."""
    cursor = request.args.get("cursor") or None
    if cursor is not None:
        try:
            store.parse_cursor(cursor)
        except store.BadCursor as exc:
            raise params.BadParameter("cursor", str(exc)) from None
    return cursor


@bp.get("/readings")
def readings() -> Response:
    """Raw readings, oldest first, a page at a time: pass `next` back as `cursor`."""
    sources, sensors, since, until = _filters()
    limit = params.integer(request.args, "limit", READINGS_LIMIT)
    cursor = _cursor()

    def page(conn: sqlite3.Connection) -> str:
        found, after = store.page_readings(
            conn,
            sources=sources,
            sensors=sensors,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        )
        # Encoded in the read's thread too, one reading per call: one json.dumps
        # of 10,000 readings would hold the GIL (and so the hub) for its whole run.
        body = ",".join(r.to_json() for r in found)
        return f'{{"readings":[{body}],"next":{json.dumps(after)}}}'

    return Response(db.read(page), mimetype="application/json")


@bp.get("/series")
def series() -> Response:
    """One metric, downsampled to buckets of min/avg/max/n from the finest tier covering it."""
    source = params.required_name(request.args, "source")
    sensor = params.required_name(request.args, "sensor")
    metric = params.metric(request.args)
    since, until = params.time_range(request.args, HOUR, params.MAX_TIME)
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


TIERS = {"raw": 0, "1m": 1, "1h": 2}
EXPORT_MAX_LIMIT = 999_999_999
READINGS_LIMIT = params.Bounds(default=1000, low=1, high=10_000)
SERIES_POINTS = params.Bounds(default=300, low=1, high=5000)
EXPORT_LIMIT = params.Bounds(default=0, low=1, high=EXPORT_MAX_LIMIT)  # 0: all of the range
# The unit table for the browser, in display order (its one source: shared/reading.py).
UNITS_JSON = {
    suffix: {"symbol": u.symbol, "digits": u.digits, "label": u.label}
    for suffix, u in UNITS.items()
}
EXPORT_PAGE = 2000  # readings (or buckets) per read: one short query, one chunk of CSV
RAW_HEADER = ["ts", "time_utc", "source", "sensor", "seq", "metric", "value"]
ROLLUP_HEADER = ["t", "time_utc", "source", "sensor", "metric", "min", "avg", "max", "n"]


@dataclass(frozen=True)
class Export:
    """What one export asks for; each page is read with it on a fresh connection."""

    tier: int
    sources: list[str]
    sensors: list[str]
    since: float
    until: float
    display: bool
    # The hour the last page ended in, decoded (store.iter_raw): pages do not decode it again.
    cache: dict[int, list[store.RawRow]] = field(default_factory=dict, compare=False)

    def page(self, conn: sqlite3.Connection, after: Any, size: int) -> tuple[str, Any]:
        """The CSV text of the next `size` readings or buckets, and where the next page starts."""
        known = store.names(conn)
        sids = store.sensor_ids(known, self.sources, self.sensors)
        if self.tier == 0:
            raw, after = store.page_raw(conn, sids, self.since, self.until, size, after, self.cache)
            rows: Iterator[list[object]] = _raw_rows(raw, known)
            header = RAW_HEADER
        else:
            buckets, after = store.page_rollups(
                conn, self.tier, sids, self.since, self.until, size, after
            )
            rows, header = (_rollup_row(b) for b in buckets), ROLLUP_HEADER
        if self.display:
            header, rows = sensor_settings.display_csv(
                header, rows, sensor_settings.load_chosen(conn)
            )
        return _csv_text(rows), after


@bp.get("/export.csv")
def export_csv() -> Response:
    """Any range as CSV, streamed a page at a time: raw values (a row each) or 1m/1h buckets."""
    sources, sensors, since, until = _filters()
    tier = request.args.get("tier", "raw")
    if tier not in TIERS:
        raise params.BadParameter("tier", "must be raw, 1m or 1h")
    # Optional: at most this many readings (or buckets); by default the whole range.
    limit = params.integer(request.args, "limit", EXPORT_LIMIT) or None
    display = sensor_settings.wants_display(request.args)
    export = Export(TIERS[tier], sources, sensors, since, until, display)
    header = RAW_HEADER if tier == "raw" else ROLLUP_HEADER
    if display:
        header, _ = sensor_settings.display_csv(header, iter(()), {})
    # The first page before the response: a database that cannot be read is a 503.
    first = db.read(partial(export.page, after=None, size=_size(limit, 0)))
    settings = current_app.config["SETTINGS"]
    pages = _pages(export, first, limit, Path(settings.database_path), settings.query_timeout)
    name = "readings.csv" if tier == "raw" else f"readings-{tier}.csv"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    return Response(_chain(_csv_text([header]), pages), mimetype="text/csv", headers=headers)


def _size(limit: int | None, done: int) -> int:
    return EXPORT_PAGE if limit is None else min(EXPORT_PAGE, limit - done)


def _pages(
    export: Export, first: tuple[str, Any], limit: int | None, path: Path, deadline: float
) -> Iterator[str]:
    """Page after page, each its own read off the hub: memory stays flat whatever the range."""
    text, after = first
    done = _size(limit, 0)
    yield text
    while after is not None and _size(limit, done) > 0:
        size = _size(limit, done)
        try:
            text, after = db.read_at(path, partial(export.page, after=after, size=size), deadline)
        except db.HistoryUnavailable as exc:
            # The status line is sent: the file ends here, the log says why.
            logger.warning("export cut short: %s", exc)
            return
        done += size
        yield text


def _chain(head: str, rest: Iterator[str]) -> Iterator[str]:
    yield head
    yield from rest


def _csv_text(rows: Iterable[list[object]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def _raw_rows(raw: Iterable[store.RawRow], known: store.Names) -> Iterator[list[object]]:
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


def _cell(name: str) -> str:
    return "'" + name if name.startswith("-") else name
