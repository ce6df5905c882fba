"""`python -m recorder import FILE...`: history from files into the dashboard database.

Reads JSON lines of readings (what `python -m producers --once` prints), the
CSV `/api/export.csv` writes, and the seed project's SQLite files
(docs/history.md). Idempotent: a reading already stored is skipped, and a
file's progress is kept in the `imports` table, so importing it again (or
after an interruption) adds nothing twice, even where the raw tier was pruned.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import logging
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from itertools import islice
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared import store
from shared.events import Event
from shared.reading import NAME_RE, Reading, ReadingError

logger = logging.getLogger(__name__)

BATCH = 2000
MAX_REPORTED = 5  # bad rows described in the log, per file
CSV_HEADER = ["ts", "time_utc", "source", "sensor", "seq", "metric", "value"]
SQLITE_MAGIC = b"SQLite format 3\x00"
# The seed project's layouts: table -> (sensor, {column: metric}, times are UTC).
SEED_TABLES = {
    "TEMPERATURE": ("bme280", {"TEMPERATURE": "temperature_c"}, False),
    "PRESSURE": ("bme280", {"PRESSURE": "pressure_hpa"}, False),
    "sensor_data": (
        "hwmon",
        {"TEMPERATURE": "tctl_c", "fan2": "fan2_rpm", "ppt": "ppt_w"},
        True,
    ),
    "pi_sensor_data": ("pi_cpu", {"TEMPERATURE": "cpu_temp_c"}, True),
}


class UnknownFile(ValueError):
    """A file none of the readers understands; the message is one sentence."""


@dataclass
class Result:
    """What one file gave."""

    added: int = 0
    already: int = 0
    bad: int = 0
    resumed_at: int = 0
    refused: int = 0  # readings of sensors past MAX_SENSORS


# An input record: a reading, or the reason it is not one.
Item = Reading | str


@dataclass(frozen=True)
class Options:
    """--source and --tz, and MAX_SENSORS (the recorder's bound applies to imports too)."""

    source: str | None = None
    tz: tzinfo | None = None
    max_sensors: int | None = None


def open_items(path: Path, options: Options) -> tuple[Iterator[Item], int]:
    """The file's records, in a fixed order, and how many there are (0: unknown)."""
    with path.open("rb") as f:
        head = f.read(4096)
    if head.startswith(SQLITE_MAGIC):
        return _seed_items(path, options)
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    first = text.lstrip().split("\n", 1)[0].strip()
    if first.startswith("{"):
        return _json_items(path), 0
    if first.split(",") == CSV_HEADER:
        return _csv_items(path), 0
    if first.startswith(("t,time_utc,", '"t",')):
        raise UnknownFile(
            f"{path.name} is an export of a rollup tier (tier=1m or 1h);"
            " import the raw export (/api/export.csv without tier) instead"
        )
    raise UnknownFile(
        f"{path.name} is not a file this command reads: expected JSON lines of readings,"
        " the CSV /api/export.csv writes, or a seed project database"
        " (temperature.db, sensor_data.db, pi_sensor_data.db)"
    )


def _json_items(path: Path) -> Iterator[Item]:
    with path.open(encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                yield f"line {number}: empty"
                continue
            try:
                yield Reading.from_json(line)
            except ReadingError as exc:
                yield f"line {number}: {exc}"


def _csv_items(path: Path) -> Iterator[Item]:
    """Rows of one reading are consecutive (ts, source, sensor, seq): join them back."""
    with path.open(encoding="utf-8", errors="replace", newline="") as f:
        rows = csv.reader(f)
        next(rows)
        key, values, number = None, {}, 1
        for number, row in enumerate(rows, 2):
            parsed = _csv_row(row)
            if isinstance(parsed, str):
                yield f"line {number}: {parsed}"
                continue
            row_key, metric, value = parsed
            if row_key != key and key is not None:
                yield _csv_reading(key, values, number - 1)
                values = {}
            key = row_key
            values[metric] = value
        if key is not None:
            yield _csv_reading(key, values, number)


def _csv_row(row: list[str]) -> tuple[tuple, str, float] | str:
    if len(row) != len(CSV_HEADER):
        return f"{len(row)} columns, not {len(CSV_HEADER)}"
    ts, _, source, sensor, seq, metric, value = row
    try:
        key = (float(ts), _uncell(source), _uncell(sensor), int(seq) if seq else None)
        return key, metric, float(value)
    except ValueError as exc:
        return f"not a number ({exc})"


def _uncell(name: str) -> str:
    """Undo the export's spreadsheet guard ("'-x" is the name "-x")."""
    return name[1:] if name.startswith("'-") else name


def _csv_reading(key: tuple, values: dict[str, float], number: int) -> Item:
    ts, source, sensor, seq = key
    try:
        return Reading(source=source, sensor=sensor, ts=ts, seq=seq, values=values)
    except ReadingError as exc:
        return f"line {number}: {exc}"


def _seed_items(path: Path, options: Options) -> tuple[Iterator[Item], int]:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise UnknownFile(f"{path.name} is an SQLite file that cannot be read ({exc})") from None
    found = [t for t in SEED_TABLES if t in tables]
    if not found:
        conn.close()
        raise UnknownFile(
            f"{path.name} is an SQLite database without the seed project's tables"
            f" ({', '.join(SEED_TABLES)})"
        )
    total = sum(conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in found)  # noqa: S608 - names from SEED_TABLES
    source = options.source or _stem_source(path)
    return _seed_rows(conn, found, source, options.tz), total


def _stem_source(path: Path) -> str:
    cleaned = "".join(c if NAME_RE.fullmatch(c) else "-" for c in path.stem)[:64]
    return cleaned or "imported"


def _seed_rows(
    conn: sqlite3.Connection, tables: list[str], source: str, tz: tzinfo | None
) -> Iterator[Item]:
    """Readings of each seed table; TEMPERATURE and PRESSURE rows of one time are one reading."""
    try:
        pressure: dict[object, object] = {}
        if "PRESSURE" in tables:
            pressure = dict(conn.execute('SELECT DATE, PRESSURE FROM "PRESSURE" ORDER BY rowid'))
        for table in tables:
            if table == "PRESSURE":
                continue
            sensor, columns, utc = SEED_TABLES[table]
            names = ", ".join(f'"{c}"' for c in columns)
            rows = conn.execute(f'SELECT DATE, {names} FROM "{table}" ORDER BY rowid')  # noqa: S608 - names from SEED_TABLES
            for date, *values in rows:
                metrics = dict(zip(columns.values(), values, strict=True))
                if table == "TEMPERATURE" and date in pressure:
                    metrics["pressure_hpa"] = pressure.pop(date)
                yield _seed_reading(source, sensor, date, metrics, None if utc else tz, utc)
        for date, value in pressure.items():
            yield _seed_reading(source, "bme280", date, {"pressure_hpa": value}, tz, False)
    finally:
        conn.close()


def _seed_reading(
    source: str,
    sensor: str,
    date: object,
    metrics: dict[str, object],
    tz: tzinfo | None,
    utc: bool,
) -> Item:
    values = {k: v for k, v in metrics.items() if v is not None}
    try:
        ts = _seed_time(date, UTC if utc else tz)
        return Reading(source=source, sensor=sensor, ts=ts, values=values)  # type: ignore[arg-type]
    except (ReadingError, ValueError, TypeError, OverflowError) as exc:
        return f"DATE {date!r:.40}: {exc}"


def _seed_time(date: object, tz: tzinfo | None) -> float:
    """A seed DATE: Unix seconds, or "YYYY-MM-DD HH:MM:SS" in `tz` (None: this machine's zone)."""
    if isinstance(date, int | float) and not isinstance(date, bool):
        return float(date)
    if not isinstance(date, str):
        raise ValueError("not a date")
    parsed = datetime.fromisoformat(date.strip())
    if parsed.tzinfo is None and tz is not None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.timestamp()


def import_file(
    conn: sqlite3.Connection,
    path: Path,
    options: Options,
    progress: Callable[[int, int], None] | None = None,
) -> Result:
    """Import one file (raises UnknownFile); resumes where an earlier run stopped."""
    with path.open("rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    done, complete = store.import_progress(conn, digest)
    result = Result(resumed_at=done)
    if complete:
        return result
    items, total = open_items(path, options)
    position = sum(1 for _ in islice(items, done))
    reported = 0
    while batch := list(islice(items, BATCH)):
        position += len(batch)
        readings = [item for item in batch if isinstance(item, Reading)]
        for reason in (item for item in batch if isinstance(item, str)):
            result.bad += 1
            if reported < MAX_REPORTED:
                reported += 1
                logger.warning("%s: skipped %s", path.name, reason)
        events = [Event(None, r) for r in readings]
        refused: list[Event] = []
        added = store.insert_imported(
            conn,
            events,
            digest=digest,
            name=path.name,
            records=position,
            max_sensors=options.max_sensors,
            refused=refused,
        )
        result.added += added
        result.already += len(readings) - added - len(refused)
        if refused:
            # Stop here, unfinished: the next run resumes at this batch.
            _report_refused(path, result, refused)
            return result
        if progress is not None:
            progress(position, total)
    store.insert_imported(conn, [], digest=digest, name=path.name, records=position, complete=True)
    return result


def _report_refused(path: Path, result: Result, refused: list[Event]) -> None:
    """Name the first few sensors past MAX_SENSORS that stopped the import."""
    names = sorted({f"{e.reading.source}/{e.reading.sensor}" for e in refused})
    logger.error(
        "%s: the history holds MAX_SENSORS sensors already and this file has more (%s%s);"
        " stopped before them: raise MAX_SENSORS and import it again to continue",
        path.name,
        ", ".join(names[:MAX_REPORTED]),
        ", ..." if len(names) > MAX_REPORTED else "",
    )
    result.refused += len(refused)


class Progress:
    """A one-line progress display on a terminal; silent otherwise."""

    def __init__(self, name: str, stream: io.TextIOBase | None = None) -> None:
        self.name = name
        self.stream = stream or sys.stderr
        self.shown = 0.0
        self.start = time.monotonic()
        self.active = self.stream.isatty()

    def __call__(self, done: int, total: int) -> None:
        """Redraw at most 4 times a second."""
        now = time.monotonic()
        if not self.active or now - self.shown < 0.25:
            return
        self.shown = now
        rate = done / max(now - self.start, 1e-9)
        share = f" {done / total:4.0%}" if total else ""
        self.stream.write(f"\r{self.name}:{share} {done:,} records, {rate:,.0f}/s ")
        self.stream.flush()

    def close(self) -> None:
        """End the line the display was redrawing."""
        if self.active and self.shown:
            self.stream.write("\n")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line of `python -m recorder import`."""
    parser = argparse.ArgumentParser(
        prog="python -m recorder import",
        description="Import history: JSON lines of readings, the CSV /api/export.csv writes,"
        " or the seed project's temperature.db / sensor_data.db / pi_sensor_data.db.",
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parser.add_argument(
        "--source", help="source name for seed databases (default: the file's stem)"
    )
    parser.add_argument(
        "--tz",
        help="time zone of local times (temperature.db), e.g. Europe/Madrid;"
        " default: this machine's zone",
    )
    return parser.parse_args(argv)


def _options(args: argparse.Namespace) -> Options | str:
    """The options, or a sentence saying which one is wrong."""
    if args.source is not None and not NAME_RE.fullmatch(args.source):
        return f"--source {args.source!r}: names are 1-64 characters of [A-Za-z0-9._-]"
    tz = None
    if args.tz:
        try:
            tz = ZoneInfo(args.tz)
        except (ZoneInfoNotFoundError, ValueError):
            return f"--tz {args.tz!r}: not a time zone name such as Europe/Madrid or UTC"
    return Options(source=args.source, tz=tz)


def run(
    conn: sqlite3.Connection,
    argv: list[str],
    out: io.TextIOBase | None = None,
    max_sensors: int | None = None,
) -> int:
    """Import every file named; 0 if each was read, 1 if any could not be (or was cut)."""
    out = out or sys.stdout
    args = parse_args(argv)
    options = _options(args)
    if isinstance(options, str):
        print(options, file=sys.stderr)
        return 2
    options = replace(options, max_sensors=max_sensors)
    failed = 0
    for path in args.files:
        failed += not _one(conn, path, options, out)
    return 1 if failed else 0


def _one(conn: sqlite3.Connection, path: Path, options: Options, out: io.TextIOBase) -> bool:
    """Import one file and print what it gave; False if it could not be read."""
    start = time.monotonic()
    progress = Progress(path.name)
    try:
        result = import_file(conn, path, options, progress)
    except UnknownFile as exc:
        print(exc, file=sys.stderr)
        return False
    except OSError as exc:
        print(f"{path}: cannot be read ({exc.strerror or exc})", file=sys.stderr)
        return False
    finally:
        progress.close()
    rate = (result.added + result.already) / max(time.monotonic() - start, 1e-9)
    resumed = f", resumed after {result.resumed_at:,} records" if result.resumed_at else ""
    refused = (
        f", stopped at {result.refused:,} readings of sensors past MAX_SENSORS"
        " (raise it and import again to continue)"
        if result.refused
        else ""
    )
    print(
        f"{path}: {result.added:,} readings added, {result.already:,} already stored,"
        f" {result.bad:,} bad records skipped{refused}{resumed} ({rate:,.0f} readings/s)",
        file=out,
    )
    return not result.refused
