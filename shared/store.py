"""The SQLite store: plain functions that take a connection (schema in schema.sql)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from shared.events import Event, stream_id_key
from shared.reading import Reading

# Short ranges read the raw rows (exact buckets); longer ones the minute
# rollup, where a minute belongs to the bucket holding its middle.
_RAW_SPAN = 3 * 3600


@dataclass(frozen=True, slots=True)
class Bucket:
    """One downsampled interval of a metric."""

    t: float
    min: float
    avg: float
    max: float
    n: int


def connect(path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open the database in WAL mode; read-only opens never create it."""
    if readonly:
        conn = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True, check_same_thread=False)
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL is durable against process crashes; power loss can
        # drop the last commits, which the producers' outboxes re-send.
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.row_factory = sqlite3.Row
    return conn


def init_db(conn: sqlite3.Connection) -> None:
    """Create the tables and indexes that do not exist yet."""
    conn.executescript(resources.files("shared").joinpath("schema.sql").read_text())


def insert_events(conn: sqlite3.Connection, events: Iterable[Event]) -> int:
    """Insert in one transaction, skipping ones already stored; the number added."""
    added: list[Event] = []
    with conn:
        for event in events:
            if conn.execute(_INSERT, _row(event)).rowcount:
                added.append(event)
        conn.executemany(_ROLLUP_UPSERT, _rollup_rows(added))
        conn.executemany(_LATEST_UPSERT, _latest_rows(added))
    return len(added)


_INSERT = (
    "INSERT OR IGNORE INTO readings (source, sensor, seq, ts, stream_ms, stream_n, body)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_ROLLUP_UPSERT = (
    "INSERT INTO rollup_1m VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT DO UPDATE SET vmin = min(vmin, excluded.vmin),"
    " vmax = max(vmax, excluded.vmax), vsum = vsum + excluded.vsum, n = n + excluded.n"
)
_LATEST_UPSERT = (
    "INSERT INTO latest VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET"
    " seq = excluded.seq, ts = excluded.ts, stream_id = excluded.stream_id,"
    " body = excluded.body WHERE excluded.ts >= latest.ts"
)


def _row(event: Event) -> tuple[Any, ...]:
    r = event.reading
    ms, n = stream_id_key(event.id) if event.id else (None, None)
    body = json.dumps(r.values, separators=(",", ":"))
    return (r.source, r.sensor, r.seq, r.ts, ms, n, body)


def _rollup_rows(events: Sequence[Event]) -> list[tuple[Any, ...]]:
    # Aggregate in Python first: a batch of 1,000 readings touches a few
    # minutes, so the upserts are few.
    acc: dict[tuple[str, str, str, int], list[float]] = {}
    for event in events:
        r = event.reading
        minute = int(r.ts // 60)
        for metric, value in r.values.items():
            cell = acc.get((r.source, r.sensor, metric, minute))
            if cell is None:
                acc[(r.source, r.sensor, metric, minute)] = [value, value, value, 1]
            else:
                cell[0] = min(cell[0], value)
                cell[1] = max(cell[1], value)
                cell[2] += value
                cell[3] += 1
    return [(*key, *cell) for key, cell in acc.items()]


def _latest_rows(events: Sequence[Event]) -> list[tuple[Any, ...]]:
    newest: dict[tuple[str, str], Event] = {}
    for event in events:
        old = newest.get(event.reading.key)
        if old is None or event.reading.ts >= old.reading.ts:
            newest[event.reading.key] = event
    return [
        (r.source, r.sensor, r.seq, r.ts, e.id, json.dumps(r.values, separators=(",", ":")))
        for e in newest.values()
        for r in (e.reading,)
    ]


def high_water(conn: sqlite3.Connection) -> dict[tuple[str, str], int]:
    """The highest stored seq per (source, sensor): the recorder's marks."""
    rows = conn.execute(
        "SELECT source, sensor, max(seq) FROM readings WHERE seq IS NOT NULL"
        " GROUP BY source, sensor"
    )
    return {(s, n): m for s, n, m in rows}


def _where(sources: Sequence[str], sensors: Sequence[str]) -> tuple[str, list[Any]]:
    clauses, args = [], []
    if sources:
        clauses.append(f"source IN ({','.join('?' * len(sources))})")
        args.extend(sources)
    if sensors:
        clauses.append(f"sensor IN ({','.join('?' * len(sensors))})")
        args.extend(sensors)
    return "".join(f" AND {c}" for c in clauses), args


def query_readings(
    conn: sqlite3.Connection,
    *,
    sources: Sequence[str] = (),
    sensors: Sequence[str] = (),
    since: float,
    until: float,
    limit: int,
) -> list[Reading]:
    """Raw readings with since <= ts < until, oldest first, at most `limit`."""
    where, args = _where(sources, sensors)
    rows = conn.execute(
        f"SELECT source, sensor, seq, ts, body FROM readings WHERE ts >= ? AND ts < ?{where}"  # noqa: S608 - only placeholders are formatted in
        " ORDER BY ts, id LIMIT ?",
        [since, until, *args, limit],
    )
    return [_reading(row) for row in rows]


def _reading(row: sqlite3.Row) -> Reading:
    return Reading(
        source=row["source"],
        sensor=row["sensor"],
        ts=row["ts"],
        seq=row["seq"],
        values=json.loads(row["body"]),
    )


def events_after(conn: sqlite3.Connection, last_id: str, *, limit: int) -> list[Event]:
    """Stored readings with a stream id after `last_id`, in stream order."""
    ms, n = stream_id_key(last_id)
    rows = conn.execute(
        "SELECT source, sensor, seq, ts, body, stream_ms, stream_n FROM readings"
        " WHERE stream_ms IS NOT NULL AND (stream_ms, stream_n) > (?, ?)"
        " ORDER BY stream_ms, stream_n LIMIT ?",
        (ms, n, limit),
    )
    return [Event(f"{row['stream_ms']}-{row['stream_n']}", _reading(row)) for row in rows]


def more_events_after(conn: sqlite3.Connection, last_id: str, limit: int) -> bool:
    """True if more than `limit` stored readings follow `last_id` (reads the index only)."""
    ms, n = stream_id_key(last_id)
    row = conn.execute(
        "SELECT 1 FROM readings WHERE stream_ms IS NOT NULL AND (stream_ms, stream_n) > (?, ?)"
        " ORDER BY stream_ms, stream_n LIMIT 1 OFFSET ?",
        (ms, n, limit),
    ).fetchone()
    return row is not None


def series(
    conn: sqlite3.Connection,
    *,
    source: str,
    sensor: str,
    metric: str,
    since: float,
    until: float,
    points: int,
) -> list[Bucket]:
    """One metric in `points` equal buckets of [since, until): min/avg/max/n in SQL."""
    width = max((until - since) / points, 1e-3)
    if until - since > _RAW_SPAN and width >= 60:
        sql = _SERIES_ROLLUP
        args = (since, width, source, sensor, metric, (since - 30) / 60, (until - 30) / 60)
    else:
        sql = _SERIES_RAW
        args = (f"$.{metric}", since, width, source, sensor, since, until)
    rows = conn.execute(sql, args).fetchall()
    return [
        Bucket(t=since + b * width, min=lo, avg=total / n, max=hi, n=n)
        for b, lo, hi, total, n in rows
        if n
    ]


_SERIES_ROLLUP = (
    "SELECT CAST((minute * 60 + 30 - ?1) / ?2 AS INTEGER) AS b, min(vmin), max(vmax),"
    " sum(vsum), sum(n) FROM rollup_1m WHERE source = ?3 AND sensor = ?4 AND metric = ?5"
    " AND minute >= ?6 AND minute < ?7 GROUP BY b ORDER BY b"
)
_SERIES_RAW = (
    "SELECT b, min(v), max(v), sum(v), count(v) FROM ("
    " SELECT CAST((ts - ?2) / ?3 AS INTEGER) AS b, json_extract(body, ?1) AS v"
    " FROM readings WHERE source = ?4 AND sensor = ?5 AND ts >= ?6 AND ts < ?7)"
    " WHERE v IS NOT NULL GROUP BY b ORDER BY b"
)


def latest(conn: sqlite3.Connection) -> list[Event]:
    """The newest stored reading of every sensor, by source then sensor."""
    rows = conn.execute(
        "SELECT source, sensor, seq, ts, stream_id, body FROM latest ORDER BY source, sensor"
    )
    return [Event(row["stream_id"], _reading(row)) for row in rows]
