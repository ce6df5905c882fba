"""The SQLite store: plain functions that take a connection.

Schema in schema.sql, versions in migrations.py. The raw tier is `raw_recent`
(a row per reading, as it arrives) plus `raw_blocks` (closed hours packed by
shared/codec.py); `rollup_1m` and `rollup_1h` are kept as readings arrive.
See docs/architecture.md "History storage".
"""

from __future__ import annotations

import bisect
import json
import math
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from shared import codec, migrations
from shared.events import Event, stream_id_key
from shared.reading import Reading
from shared.settings import Settings

MINUTE = 60
HOUR = 3600
DAY = 86400
# Raw rows stay unpacked this long: browsers resuming from the database
# (their stream id) are served from these rows.
HOT_SECONDS = 2 * HOUR
# (table, seconds per bucket) of the rollup tiers, finest first.
ROLLUPS = (("rollup_1m", MINUTE), ("rollup_1h", HOUR))
# Series over ranges up to this long read raw readings (at most 21,600 per
# metric at 1 Hz) so their buckets can have any width.
RAW_SERIES_SPAN = 6 * HOUR


class ResumeTooOld(LookupError):
    """The stream id is older than the unpacked raw rows: replay is impossible."""


class BadCursor(ValueError):
    """A `cursor` that this store did not hand out."""


@dataclass(frozen=True, slots=True)
class Bucket:
    """One downsampled interval of a metric."""

    t: float
    min: float
    avg: float
    max: float
    n: int


@dataclass(frozen=True, slots=True)
class Retention:
    """Days each tier keeps (0 = forever)."""

    raw_days: float
    minute_days: float
    hour_days: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Retention:
        """HISTORY_RAW_DAYS, HISTORY_MINUTE_DAYS, HISTORY_HOUR_DAYS."""
        return cls(
            settings.history_raw_days, settings.history_minute_days, settings.history_hour_days
        )


@dataclass
class Names:
    """The dictionary: (source, sensor) <-> sid, metric <-> mid, and packed hours."""

    sids: dict[tuple[str, str], int] = field(default_factory=dict)
    keys: dict[int, tuple[str, str]] = field(default_factory=dict)
    mids: dict[str, int] = field(default_factory=dict)
    metrics: dict[int, str] = field(default_factory=dict)
    blocks_until: dict[int, int] = field(default_factory=dict)
    shapes: dict[tuple[str, ...], tuple[int, ...]] = field(default_factory=dict)


class Connection(sqlite3.Connection):
    """A connection that caches the dictionary (the writer's; readers reload it)."""

    names: Names | None = None


def connect(path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open the database in WAL mode; read-only opens never create it."""
    if readonly:
        conn = sqlite3.connect(
            f"file:{Path(path)}?mode=ro", uri=True, check_same_thread=False, factory=Connection
        )
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, check_same_thread=False, factory=Connection)
        conn.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL is durable against process crashes; power loss can
        # drop the last commits, which the producers' outboxes re-send.
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.row_factory = sqlite3.Row
    return conn


def init_db(conn: sqlite3.Connection) -> None:
    """Create or upgrade the schema, copying an unversioned database's readings."""
    migrations.upgrade(conn, copy_v0=_copy_v0_rows)


def _copy_v0_rows(conn: sqlite3.Connection, rows: list[Any]) -> None:
    insert_rows(conn, [v0_event(row) for row in rows])


def names(conn: sqlite3.Connection, *, cached: bool = True) -> Names:
    """The dictionary, from the connection's cache or the database."""
    held = getattr(conn, "names", None)
    if held is not None and cached:
        return held
    found = Names()
    for sid, source, sensor, until in conn.execute(
        "SELECT sid, source, sensor, blocks_until FROM sensors"
    ):
        found.sids[(source, sensor)] = sid
        found.keys[sid] = (source, sensor)
        found.blocks_until[sid] = until
    for mid, name in conn.execute("SELECT mid, name FROM metrics"):
        found.mids[name] = mid
        found.metrics[mid] = name
    if held is not None:
        found.shapes = held.shapes  # ids are never reused, so these stay true
    if isinstance(conn, Connection):
        conn.names = found
    return found


def _forget(conn: sqlite3.Connection) -> None:
    """Drop the cache after a rollback: it may hold ids the database does not."""
    if isinstance(conn, Connection):
        conn.names = None


def _sid(
    conn: sqlite3.Connection, known: Names, source: str, sensor: str, max_sensors: int | None
) -> int | None:
    """The sensor's id, adding it unless the history holds `max_sensors` already (then None)."""
    sid = known.sids.get((source, sensor))
    if sid is None:
        if max_sensors is not None and len(known.sids) >= max_sensors:
            return None
        sid = conn.execute(
            "INSERT INTO sensors (source, sensor) VALUES (?, ?) RETURNING sid", (source, sensor)
        ).fetchone()[0]
        known.sids[(source, sensor)] = sid
        known.keys[sid] = (source, sensor)
        known.blocks_until[sid] = 0
    return sid


def _mid(conn: sqlite3.Connection, known: Names, metric: str) -> int:
    mid = known.mids.get(metric)
    if mid is None:
        mid = conn.execute(
            "INSERT INTO metrics (name) VALUES (?) RETURNING mid", (metric,)
        ).fetchone()[0]
        known.mids[metric] = mid
        known.metrics[mid] = metric
    return mid


def insert_events(
    conn: sqlite3.Connection,
    events: Iterable[Event],
    *,
    max_sensors: int | None = None,
    refused: list[Event] | None = None,
) -> int:
    """Insert in one transaction, skipping ones already stored; the number added.

    With `max_sensors`, readings of a sensor the history does not hold yet
    are appended to `refused` instead once it holds that many (MAX_SENSORS).
    """
    return _write(conn, insert_rows, events, max_sensors, refused)


def _write(conn: sqlite3.Connection, work: Callable[..., int], *args: Any) -> int:
    """Run `work` in one write transaction with the dictionary re-read inside it.

    Re-read because another writer (an import beside the recorder) may have
    added sensors or packed hours; the write lock keeps that true until commit.
    """
    conn.commit()
    conn.execute("BEGIN IMMEDIATE")
    try:
        names(conn, cached=False)
        done = work(conn, *args)
    except BaseException:
        conn.rollback()
        _forget(conn)
        raise
    conn.commit()
    return done


def insert_rows(
    conn: sqlite3.Connection,
    events: Iterable[Event],
    max_sensors: int | None = None,
    refused: list[Event] | None = None,
) -> int:
    """Insert inside the caller's transaction; update the rollups and the sensors' rows.

    Inside the write transaction the dictionary is current (`_write`), so no
    writer, recorder or import, takes the sensors past `max_sensors`.
    """
    known = names(conn)
    added: list[tuple[int, Event]] = []
    packed: dict[tuple[int, int], set[float]] = {}
    execute = conn.execute
    for event in events:
        r = event.reading
        sid = _sid(conn, known, r.source, r.sensor, max_sensors)
        if sid is None:
            if refused is not None:
                refused.append(event)
            continue
        if r.ts < known.blocks_until[sid] * HOUR and r.ts in _packed_times(conn, packed, sid, r.ts):
            continue
        ms, n = _stream_key(event.id)
        body = codec.pack_values(_mids(conn, known, r.values), tuple(r.values.values()))
        if execute(_INSERT, (r.ts, sid, r.seq, ms, n, body)).rowcount:
            added.append((sid, event))
    _rollup(conn, known, added)
    _update_sensors(conn, added)
    return len(added)


def _mids(conn: sqlite3.Connection, known: Names, values: dict[str, float]) -> tuple[int, ...]:
    """The metric ids of a reading's names, cached per set of names (sensors repeat theirs)."""
    shape = tuple(values)
    mids = known.shapes.get(shape)
    if mids is None:
        mids = known.shapes[shape] = tuple(_mid(conn, known, m) for m in shape)
    return mids


def _stream_key(stream_id: str | None) -> tuple[int | None, int | None]:
    """Stream ids come from Redis ("ms-n"), so int() is all the checking they need."""
    if stream_id is None:
        return None, None
    ms, _, n = stream_id.partition("-")
    return int(ms), int(n or 0)


_INSERT = (
    "INSERT OR IGNORE INTO raw_recent (ts, sid, seq, stream_ms, stream_n, body)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)


def _packed_times(
    conn: sqlite3.Connection, cache: dict[tuple[int, int], set[float]], sid: int, ts: float
) -> set[float]:
    """The times already packed in the block of (sid, hour of ts): late readings only."""
    key = (sid, int(ts // HOUR))
    if key not in cache:
        row = conn.execute(
            "SELECT data FROM raw_blocks WHERE hour = ? AND sid = ?", (key[1], sid)
        ).fetchone()
        cache[key] = {r.ts for r in codec.decode(row[0], metrics=())} if row else set()
    return cache[key]


def _rollup(conn: sqlite3.Connection, known: Names, added: Sequence[tuple[int, Event]]) -> None:
    """Fold the batch into minute cells in Python, hours from those, then upsert each."""
    minutes: dict[tuple[int, str, int], list[float]] = {}
    for sid, event in added:
        r = event.reading
        minute = int(r.ts // MINUTE)
        for metric, value in r.values.items():
            cell = minutes.get((sid, metric, minute))
            if cell is None:
                minutes[(sid, metric, minute)] = [value, value, value, 1]
            else:
                if value < cell[0]:
                    cell[0] = value
                if value > cell[1]:
                    cell[1] = value
                cell[2] += value
                cell[3] += 1
    hours: dict[tuple[int, str, int], list[float]] = {}
    for (sid, metric, minute), (lo, hi, total, n) in minutes.items():
        cell = hours.get((sid, metric, minute // 60))
        if cell is None:
            hours[(sid, metric, minute // 60)] = [lo, hi, total, n]
        else:
            cell[:] = [min(cell[0], lo), max(cell[1], hi), cell[2] + total, cell[3] + n]
    for (table, _), cells in zip(ROLLUPS, (minutes, hours), strict=True):
        conn.executemany(
            f"INSERT INTO {table} VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET"  # noqa: S608 - a table name from ROLLUPS
            " vmin = min(vmin, excluded.vmin), vmax = max(vmax, excluded.vmax),"
            " vsum = vsum + excluded.vsum, n = n + excluded.n",
            [(sid, _mid(conn, known, m), t, *cell) for (sid, m, t), cell in cells.items()],
        )


def _update_sensors(conn: sqlite3.Connection, added: Sequence[tuple[int, Event]]) -> None:
    marks: dict[int, int] = {}
    newest: dict[int, Event] = {}
    for sid, event in added:
        r = event.reading
        if r.seq is not None and r.seq > marks.get(sid, -1):
            marks[sid] = r.seq
        old = newest.get(sid)
        if old is None or r.ts >= old.reading.ts:
            newest[sid] = event
    conn.executemany(
        "UPDATE sensors SET max_seq = ?1 WHERE sid = ?2 AND (max_seq IS NULL OR max_seq < ?1)",
        [(seq, sid) for sid, seq in marks.items()],
    )
    conn.executemany(
        "UPDATE sensors SET last_ts = ?1, last_seq = ?2, last_id = ?3, last_body = ?4"
        " WHERE sid = ?5 AND (last_ts IS NULL OR last_ts <= ?1)",
        [
            (e.reading.ts, e.reading.seq, e.id, json.dumps(e.reading.values), sid)
            for sid, e in newest.items()
        ],
    )


def v0_event(row: Sequence[Any]) -> Event:
    """An event from a row of the unversioned schema's `readings` table."""
    _, source, sensor, seq, ts, ms, n, body = row
    reading = Reading(source=source, sensor=sensor, seq=seq, ts=ts, values=json.loads(body))
    return Event(None if ms is None else f"{ms}-{n}", reading)


def import_progress(conn: sqlite3.Connection, digest: str) -> tuple[int, bool]:
    """Records of an import file already consumed, and whether it was finished."""
    row = conn.execute(
        "SELECT records, complete FROM imports WHERE digest = ?", (digest,)
    ).fetchone()
    return (row[0], bool(row[1])) if row else (0, False)


def insert_imported(
    conn: sqlite3.Connection,
    events: Sequence[Event],
    *,
    digest: str,
    name: str,
    records: int,
    complete: bool = False,
    max_sensors: int | None = None,
    refused: list[Event] | None = None,
) -> int:
    """Insert a batch of an import and move its progress, in one transaction."""
    progress = (digest, name, records, int(complete))
    return _write(conn, _insert_imported, events, progress, max_sensors, refused)


def _insert_imported(
    conn: sqlite3.Connection,
    events: Sequence[Event],
    progress: tuple[str, str, int, int],
    max_sensors: int | None,
    refused: list[Event] | None,
) -> int:
    before = len(refused) if refused is not None else 0
    added = insert_rows(conn, events, max_sensors, refused)
    if refused is not None and len(refused) > before:
        # Progress stays before this batch: a run with a higher MAX_SENSORS
        # reads it again and adds the readings refused now.
        return added
    conn.execute(
        "INSERT INTO imports (digest, name, records, complete, at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT DO UPDATE SET records = excluded.records, complete = excluded.complete,"
        " at = excluded.at",
        (*progress, time.time()),
    )
    return added


def count_readings(conn: sqlite3.Connection) -> int:
    """How many readings the raw tier holds."""
    recent = conn.execute("SELECT count(*) FROM raw_recent").fetchone()[0]
    return recent + conn.execute("SELECT coalesce(sum(n), 0) FROM raw_blocks").fetchone()[0]


def high_water(conn: sqlite3.Connection) -> dict[tuple[str, str], int]:
    """The highest stored seq per (source, sensor): the recorder's marks."""
    rows = conn.execute("SELECT source, sensor, max_seq FROM sensors WHERE max_seq IS NOT NULL")
    return {(s, n): m for s, n, m in rows}


def latest(conn: sqlite3.Connection) -> list[Event]:
    """The newest stored reading of every sensor, by source then sensor."""
    rows = conn.execute(
        "SELECT source, sensor, last_seq, last_ts, last_id, last_body FROM sensors"
        " WHERE last_ts IS NOT NULL ORDER BY source, sensor"
    )
    return [
        Event(
            last_id,
            Reading(source=source, sensor=sensor, seq=seq, ts=ts, values=json.loads(body)),
        )
        for source, sensor, seq, ts, last_id, body in rows
    ]


def events_after(conn: sqlite3.Connection, last_id: str, *, limit: int) -> list[Event]:
    """Stored readings with a stream id after `last_id`, in stream order.

    Raises ResumeTooOld when some of them are packed already (packing drops
    stream ids): the client reloads its history instead.
    """
    ms, n = stream_id_key(last_id)
    oldest = conn.execute(
        "SELECT stream_ms, stream_n FROM raw_recent WHERE stream_ms IS NOT NULL"
        " ORDER BY stream_ms, stream_n LIMIT 1"
    ).fetchone()
    if oldest is None or (ms, n) < tuple(oldest):
        packed = conn.execute(
            "SELECT 1 FROM raw_blocks WHERE hour >= ? LIMIT 1", (ms // 1000 // HOUR,)
        ).fetchone()
        if packed:
            raise ResumeTooOld(f"readings after {last_id} are no longer kept with stream ids")
    known = names(conn)
    rows = conn.execute(
        "SELECT sid, seq, ts, body, stream_ms, stream_n FROM raw_recent"
        " WHERE stream_ms IS NOT NULL AND (stream_ms, stream_n) > (?, ?)"
        " ORDER BY stream_ms, stream_n LIMIT ?",
        (ms, n, limit),
    )
    return [
        Event(f"{sms}-{sn}", _reading(known, sid, ts, seq, _named(known, body)))
        for sid, seq, ts, body, sms, sn in rows
    ]


def _named(known: Names, body: bytes) -> dict[str, float]:
    return {known.metrics[m]: v for m, v in codec.unpack_values(body).items()}


def _reading(known: Names, sid: int, ts: float, seq: int | None, values: dict) -> Reading:
    source, sensor = known.keys[sid]
    return Reading(source=source, sensor=sensor, ts=ts, seq=seq, values=values)


def pack_one(conn: sqlite3.Connection, *, before: float) -> int:
    """Pack the oldest closed hour of one sensor from raw_recent into its block.

    Only hours ending by `before` are closed. The rows are read and encoded
    outside the write lock; the short write transaction swaps them for the
    block only if nothing changed meanwhile. Returns the rows packed (0: none,
    or a late reading arrived and the next call will pack it too).
    """
    first = conn.execute(
        "SELECT ts, sid FROM raw_recent WHERE ts < ? ORDER BY ts LIMIT 1",
        (math.floor(before / HOUR) * HOUR,),
    ).fetchone()
    if first is None:
        return 0
    sid, hour = first[1], int(first[0] // HOUR)
    window = (hour * HOUR, (hour + 1) * HOUR, sid)
    conn.commit()
    conn.execute("BEGIN")  # one snapshot for both reads
    try:
        fresh = conn.execute(
            "SELECT ts, seq, body FROM raw_recent WHERE ts >= ? AND ts < ? AND sid = ?", window
        ).fetchall()
        old = conn.execute(
            "SELECT n, data FROM raw_blocks WHERE hour = ? AND sid = ?", (hour, sid)
        ).fetchone()
    finally:
        conn.commit()
    rows = {r.ts: r for r in codec.decode(old[1])} if old else {}
    for ts, seq, body in fresh:
        rows.setdefault(ts, codec.Row(ts, seq, codec.unpack_values(body)))
    data = codec.encode(sorted(rows.values(), key=lambda r: r.ts))
    seen = (len(fresh), old[0] if old else None)
    return _write(conn, _swap, window, seen, len(rows), data)


def _swap(
    conn: sqlite3.Connection,
    window: tuple[float, float, int],
    seen: tuple[int, int | None],
    n: int,
    data: bytes,
) -> int:
    """Replace the hour's raw rows by its block, if they are still what was encoded."""
    lo, _, sid = window
    count = conn.execute(
        "SELECT count(*) FROM raw_recent WHERE ts >= ? AND ts < ? AND sid = ?", window
    ).fetchone()[0]
    hour = int(lo // HOUR)
    old = conn.execute(
        "SELECT n FROM raw_blocks WHERE hour = ? AND sid = ?", (hour, sid)
    ).fetchone()
    if (count, old[0] if old else None) != seen:
        return 0
    conn.execute(
        "INSERT OR REPLACE INTO raw_blocks (hour, sid, n, data) VALUES (?, ?, ?, ?)",
        (hour, sid, n, data),
    )
    conn.execute("DELETE FROM raw_recent WHERE ts >= ? AND ts < ? AND sid = ?", window)
    known = names(conn)
    if hour + 1 > known.blocks_until[sid]:
        conn.execute("UPDATE sensors SET blocks_until = ? WHERE sid = ?", (hour + 1, sid))
        known.blocks_until[sid] = hour + 1
    return count


def prune_one(conn: sqlite3.Connection, retention: Retention, now: float) -> int:
    """Delete one small slice past its tier's retention; the rows deleted (0: nothing left)."""
    if retention.raw_days:
        cutoff = math.floor((now - retention.raw_days * DAY) / HOUR)
        first = conn.execute("SELECT min(hour) FROM raw_blocks").fetchone()[0]
        if first is not None and first < cutoff:
            with conn:
                # One hour of blocks: a row per sensor.
                return conn.execute("DELETE FROM raw_blocks WHERE hour = ?", (first,)).rowcount
    for (table, width), days in zip(
        ROLLUPS, (retention.minute_days, retention.hour_days), strict=True
    ):
        if days:
            deleted = _prune_rollup(conn, table, math.floor((now - days * DAY) / width), width)
            if deleted:
                return deleted
    return 0


def _prune_rollup(conn: sqlite3.Connection, table: str, cutoff: int, width: int) -> int:
    """Up to a day of the first series' buckets before `cutoff` (index seeks, no scan)."""
    known = names(conn)
    for sid in known.keys:
        for mid in known.metrics:
            first = conn.execute(
                f"SELECT min(t) FROM {table} WHERE sid = ? AND mid = ?",  # noqa: S608 - from ROLLUPS
                (sid, mid),
            ).fetchone()[0]
            if first is not None and first < cutoff:
                with conn:
                    return conn.execute(
                        f"DELETE FROM {table} WHERE sid = ? AND mid = ? AND t < ?",  # noqa: S608 - from ROLLUPS
                        (sid, mid, min(cutoff, first + DAY // width)),
                    ).rowcount
    return 0


# A raw row as queries see it: (ts, sid, seq, {metric: value}).
RawRow = tuple[float, int, int | None, dict[str, float]]


def sensor_ids(known: Names, sources: Sequence[str] = (), sensors: Sequence[str] = ()) -> list[int]:
    """The sids of the (source, sensor) pairs a filter selects (empty list = all)."""
    return sorted(
        sid
        for (source, sensor), sid in known.sids.items()
        if (not sources or source in sources) and (not sensors or sensor in sensors)
    )


def iter_raw(
    conn: sqlite3.Connection,
    sids: Sequence[int],
    since: float,
    until: float,
    after: tuple[float, int] | None = None,
    cache: dict[int, list[RawRow]] | None = None,
) -> Iterator[RawRow]:
    """Raw rows with since <= ts < until (after `after`), by (ts, sid), an hour at a time.

    `cache` keeps the last hour decoded across calls: a caller paging through
    a range (the CSV export) decodes each hour's blocks once, not once a page.
    """
    if not sids:
        return
    known = names(conn)
    hour = int((after[0] if after else since) // HOUR)
    end = math.ceil(until / HOUR)
    while (hour := _next_hour(conn, sids, hour, end)) is not None:
        rows = cache.get(hour) if cache is not None else None
        if rows is None:
            rows = _hour_rows(conn, known, sids, hour)
            if cache is not None:
                cache.clear()
                cache[hour] = rows
        start = bisect.bisect_right(rows, after, key=_position) if after else 0
        for row in islice(rows, start, None):
            if since <= row[0] < until:
                yield row
        hour += 1


def _position(row: RawRow) -> tuple[float, int]:
    return row[0], row[1]


def _in(sids: Sequence[int]) -> str:
    return ",".join("?" * len(sids))


def _next_hour(conn: sqlite3.Connection, sids: Sequence[int], hour: int, end: int) -> int | None:
    """The first hour from `hour` (before `end`) holding a block or a raw row of `sids`.

    Every sensor: walk the time-ordered primary keys (the first row matches).
    Some: one seek per sensor in the (sid, time) indexes, so a sensor with few
    or no rows never walks the others' (docs/architecture.md, "History storage").
    """
    if len(sids) == len(names(conn).sids):
        block = conn.execute(
            "SELECT hour FROM raw_blocks WHERE hour >= ? AND hour < ? ORDER BY hour LIMIT 1",
            (hour, end),
        ).fetchone()
        recent = conn.execute(
            "SELECT ts FROM raw_recent WHERE ts >= ? AND ts < ? ORDER BY ts LIMIT 1",
            (hour * HOUR, end * HOUR),
        ).fetchone()
    else:
        block = conn.execute(
            f"WITH s(sid) AS (VALUES {_rows(sids)}) SELECT min((SELECT hour FROM raw_blocks"  # noqa: S608 - placeholders only
            " WHERE sid = s.sid AND hour >= ? AND hour < ? ORDER BY hour LIMIT 1)) FROM s",
            (*sids, hour, end),
        ).fetchone()
        recent = conn.execute(
            f"WITH s(sid) AS (VALUES {_rows(sids)}) SELECT min((SELECT ts FROM raw_recent"  # noqa: S608 - placeholders only
            " WHERE sid = s.sid AND ts >= ? AND ts < ? ORDER BY ts LIMIT 1)) FROM s",
            (*sids, hour * HOUR, end * HOUR),
        ).fetchone()
    ts = recent[0] if recent else None
    found = [
        h
        for h in (block[0] if block else None, None if ts is None else int(ts // HOUR))
        if h is not None
    ]
    return min(found) if found else None


def _rows(sids: Sequence[int]) -> str:
    return ",".join(["(?)"] * len(sids))


def _hour_rows(
    conn: sqlite3.Connection, known: Names, sids: Sequence[int], hour: int
) -> list[RawRow]:
    rows: list[RawRow] = []
    for sid, data in conn.execute(
        f"SELECT sid, data FROM raw_blocks WHERE hour = ? AND sid IN ({_in(sids)})",  # noqa: S608 - placeholders only
        (hour, *sids),
    ):
        rows.extend(
            (r.ts, sid, r.seq, {known.metrics[m]: v for m, v in r.values.items()})
            for r in codec.decode(data)
        )
    for ts, sid, seq, body in conn.execute(
        f"SELECT ts, sid, seq, body FROM raw_recent WHERE ts >= ? AND ts < ?"  # noqa: S608 - placeholders only
        f" AND sid IN ({_in(sids)})",
        (hour * HOUR, (hour + 1) * HOUR, *sids),
    ):
        values = codec.unpack_values(body)
        rows.append((ts, sid, seq, {known.metrics[m]: v for m, v in values.items()}))
    rows.sort(key=lambda row: (row[0], row[1]))
    return rows


def page_raw(
    conn: sqlite3.Connection,
    sids: Sequence[int],
    since: float,
    until: float,
    size: int,
    after: tuple[float, int] | None = None,
    cache: dict[int, list[RawRow]] | None = None,
) -> tuple[list[RawRow], tuple[float, int] | None]:
    """Up to `size` raw rows after `after`, and the position of the next page (None: no more)."""
    rows = list(islice(iter_raw(conn, sids, since, until, after, cache), size + 1))
    if len(rows) <= size:
        return rows, None
    return rows[:size], (rows[size - 1][0], rows[size - 1][1])


def page_readings(
    conn: sqlite3.Connection,
    *,
    sources: Sequence[str] = (),
    sensors: Sequence[str] = (),
    since: float,
    until: float,
    limit: int,
    cursor: str | None = None,
) -> tuple[list[Reading], str | None]:
    """Up to `limit` readings, oldest first, and the cursor of the next page (None: no more)."""
    known = names(conn)
    sids = sensor_ids(known, sources, sensors)
    after = parse_cursor(cursor) if cursor else None
    rows, following = page_raw(conn, sids, since, until, limit, after)
    readings = [_reading(known, sid, ts, seq, values) for ts, sid, seq, values in rows]
    return readings, (f"{following[0]!r}_{following[1]}" if following else None)


def parse_cursor(cursor: str) -> tuple[float, int]:
    """The (ts, sid) position a `next` cursor names; BadCursor if it is not one."""
    ts, _, sid = cursor.partition("_")
    try:
        position = (float(ts), int(sid))
    except ValueError:
        raise BadCursor("not a cursor this server handed out") from None
    if not math.isfinite(position[0]) or len(cursor) > 64:
        raise BadCursor("not a cursor this server handed out")
    return position


def query_readings(conn: sqlite3.Connection, **selection: Any) -> list[Reading]:
    """The first page of `page_readings` (the same keywords, no cursor), oldest first."""
    return page_readings(conn, **selection)[0]


def more_events_after(conn: sqlite3.Connection, last_id: str, limit: int) -> bool:
    """True if more than `limit` stored readings follow `last_id` (reads the index only)."""
    ms, n = stream_id_key(last_id)
    row = conn.execute(
        "SELECT 1 FROM raw_recent WHERE stream_ms IS NOT NULL AND (stream_ms, stream_n) > (?, ?)"
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
    """One metric in about `points` buckets of [since, until), from the finest tier covering it.

    From a rollup tier the bucket width is rounded up to whole minutes or hours
    (so every bucket holds the same number of them) and may give fewer points.
    """
    known = names(conn)
    sid, mid = known.sids.get((source, sensor)), known.mids.get(metric)
    if sid is None or mid is None:
        return []
    held = oldest(conn, sid, mid)
    if not any(o is not None for o in held):
        return []
    # A range from before the first data starts there: "all" asks since=0.
    since = max(since, min(o for o in held if o is not None))
    if since >= until:
        return []
    width = max((until - since) / points, 1e-3)
    tier = choose_tier(held, since, until, width)
    if tier == 0:
        return _raw_series(conn, sid, mid, since, until, width)
    table, size = ROLLUPS[tier - 1]
    start = math.floor(since / size) * size
    step = math.ceil(width / size) * size
    while math.ceil((until - start) / step) > points:  # at most `points` buckets
        step += size
    rows = conn.execute(
        f"SELECT (t * ?1 - ?2) / ?3 AS b, min(vmin), max(vmax), sum(vsum), sum(n) FROM {table}"  # noqa: S608 - a table name from ROLLUPS
        " WHERE sid = ?4 AND mid = ?5 AND t >= ?6 AND t < ?7 GROUP BY b ORDER BY b",
        (size, start, step, sid, mid, start // size, math.ceil(until / size)),
    )
    return [Bucket(start + b * step, lo, total / n, hi, n) for b, lo, hi, total, n in rows]


def oldest(conn: sqlite3.Connection, sid: int, mid: int) -> list[int | None]:
    """Per tier (raw, minute, hour): the hour (Unix time) of the series' oldest data."""
    held = [_oldest_raw(conn, sid)]
    for table, size in ROLLUPS:
        t = conn.execute(
            f"SELECT min(t) FROM {table} WHERE sid = ? AND mid = ?",  # noqa: S608 - from ROLLUPS
            (sid, mid),
        ).fetchone()[0]
        held.append(None if t is None else t * size // HOUR * HOUR)
    return held


def choose_tier(held: Sequence[int | None], since: float, until: float, width: float) -> int | None:
    """0 raw, 1 minute, 2 hour: the coarsest tier that covers `since` at about `width` buckets.

    A tier covers `since` when it holds the series from there on, or from as
    far back as any tier holds it (to the hour: tiers are pruned by the hour),
    so one tier answers the whole range and there is no gap where one ends.
    Short ranges read raw readings when they cover it (exact buckets of any width).
    """
    present = [o for o in held if o is not None]
    if not present:
        return None
    bound = max(math.floor(since / HOUR) * HOUR, min(present))
    covering = [i for i, o in enumerate(held) if o is not None and o <= bound]
    if covering[0] == 0 and until - since <= RAW_SERIES_SPAN:
        return 0
    # A rollup fits when buckets of whole minutes (hours) still give at least
    # two thirds of the points asked for.
    points = (until - since) / width
    sizes = (0, *(size for _, size in ROLLUPS))
    rollups = [i for i in covering if i > 0]
    fitting = [
        i
        for i in rollups
        if (until - since) / (math.ceil(width / sizes[i]) * sizes[i]) >= points * 2 / 3
    ]
    if fitting:
        return fitting[-1]
    # Raw beyond RAW_SERIES_SPAN would cost a request seconds: fewer points instead.
    return rollups[0] if rollups else covering[0]


def _oldest_raw(conn: sqlite3.Connection, sid: int) -> int | None:
    """The hour (as Unix time) of the sensor's oldest raw reading."""
    block = conn.execute(
        "SELECT hour FROM raw_blocks WHERE sid = ? ORDER BY hour LIMIT 1", (sid,)
    ).fetchone()
    if block is not None:
        return block[0] * HOUR
    recent = conn.execute(
        "SELECT ts FROM raw_recent WHERE sid = ? ORDER BY ts LIMIT 1", (sid,)
    ).fetchone()
    return None if recent is None else math.floor(recent[0] / HOUR) * HOUR


def _raw_series(
    conn: sqlite3.Connection,
    sid: int,
    mid: int,
    since: float,
    until: float,
    width: float,
) -> list[Bucket]:
    acc: dict[int, list[float]] = {}
    for ts, value in _raw_values(conn, sid, mid, since, until):
        if value is None or not since <= ts < until:
            continue
        b = int((ts - since) / width)
        cell = acc.get(b)
        if cell is None:
            acc[b] = [value, value, value, 1]
        else:
            cell[0] = min(cell[0], value)
            cell[1] = max(cell[1], value)
            cell[2] += value
            cell[3] += 1
    return [
        Bucket(since + b * width, lo, total / n, hi, int(n))
        for b, (lo, hi, total, n) in sorted(acc.items())
    ]


def _raw_values(
    conn: sqlite3.Connection, sid: int, mid: int, since: float, until: float
) -> Iterator[tuple[float, float | None]]:
    for (data,) in conn.execute(
        "SELECT data FROM raw_blocks WHERE hour >= ? AND hour < ? AND sid = ?",
        (math.floor(since / HOUR), math.ceil(until / HOUR), sid),
    ):
        yield from ((r.ts, r.values.get(mid)) for r in codec.decode(data, metrics=(mid,)))
    for ts, body in conn.execute(
        "SELECT ts, body FROM raw_recent WHERE ts >= ? AND ts < ? AND sid = ?",
        (since, until, sid),
    ):
        yield ts, codec.unpack_values(body).get(mid)


# A rollup row as exports see it: (bucket start, source, sensor, metric, min, avg, max, n).
RollupRow = tuple[float, str, str, str, float, float, float, int]


def page_rollups(
    conn: sqlite3.Connection,
    tier: int,
    sids: Sequence[int],
    since: float,
    until: float,
    size: int,
    after: tuple[int, int, int] | None = None,
) -> tuple[list[RollupRow], tuple[int, int, int] | None]:
    """Up to `size` buckets of tier 1 (minute) or 2 (hour) starting in [since, until),
    series by series (source, sensor, metric), and the position of the next page."""
    table, width = ROLLUPS[tier - 1]
    known = names(conn)
    series = [
        (sid, mid)
        for sid in sorted(sids, key=known.keys.__getitem__)
        for mid in sorted(known.metrics, key=known.metrics.__getitem__)
    ]
    start = series.index(after[:2]) if after and after[:2] in series else 0
    lo, hi = math.ceil(since / width), math.ceil(until / width)
    found: list[tuple[RollupRow, tuple[int, int, int]]] = []
    for sid, mid in series[start:]:
        first = after[2] + 1 if after and (sid, mid) == after[:2] else lo
        rows = conn.execute(
            f"SELECT t, vmin, vsum, vmax, n FROM {table} WHERE sid = ? AND mid = ?"  # noqa: S608 - from ROLLUPS
            " AND t >= ? AND t < ? ORDER BY t LIMIT ?",
            (sid, mid, first, hi, size + 1 - len(found)),
        )
        (source, sensor), metric = known.keys[sid], known.metrics[mid]
        found.extend(
            ((t * width, source, sensor, metric, vmin, total / n, vmax, n), (sid, mid, t))
            for t, vmin, total, vmax, n in rows
        )
        if len(found) > size:
            return [row for row, _ in found[:size]], found[size - 1][1]
    return [row for row, _ in found], None
