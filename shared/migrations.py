"""Schema versions: `PRAGMA user_version` and the ordered steps that reach it.

The recorder calls `upgrade(conn)` at start; web calls `check(conn)`, which
raises `SchemaError` (answered with 503) for any version but `VERSION`.

To add a table: write a function that runs its DDL on the connection it is
given and append it to `MIGRATIONS`; its place in the list is its version.
For example::

    def _v4_notes(conn: sqlite3.Connection) -> None:
        _run_file(conn, "notes.sql")  # or conn.execute("CREATE TABLE notes (...)")

    MIGRATIONS = [_v1_tiers, _v2_alerts, _v3_sensor_settings, _v4_notes]

Each step runs in one transaction with its version bump, so a step that fails
leaves the database at the version before it. Never edit, remove or reorder a
released step (nor the .sql file it runs): databases in the field have run
it; a change is a new step (`ALTER TABLE ...`).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from importlib import resources
from typing import Any

from shared import sensor_settings

logger = logging.getLogger(__name__)

COPY_BATCH = 5000
# Inserts rows of the unversioned `readings` table into the tiers (store's job).
CopyRows = Callable[[sqlite3.Connection, list[Any]], None]


class SchemaError(RuntimeError):
    """The database's schema version is not the one this code knows."""


def _statements(script: str) -> list[str]:
    """Split a .sql file into statements (executescript would commit)."""
    out, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            out.append(buffer.strip())
            buffer = ""
    return out


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
    return row.fetchone() is not None


def _v1_tiers(conn: sqlite3.Connection) -> None:
    """Tiers and packed raw rows; the unversioned tables' readings are kept for copying."""
    if _has_table(conn, "readings"):
        # Rollups and latest are rebuilt from the raw readings as they are copied.
        conn.execute("ALTER TABLE readings RENAME TO v0_readings")
        conn.execute("DROP TABLE IF EXISTS rollup_1m")
        conn.execute("DROP TABLE IF EXISTS latest")
    _run_file(conn, "schema.sql")


def _run_file(conn: sqlite3.Connection, name: str) -> None:
    """Every statement of a .sql file in shared/, inside the caller's transaction."""
    for statement in _statements(resources.files("shared").joinpath(name).read_text()):
        conn.execute(statement)


def _v2_alerts(conn: sqlite3.Connection) -> None:
    """The alert tables: rules as loaded, state per rule and metric, transitions."""
    _run_file(conn, "alerts.sql")


def _v3_sensor_settings(conn: sqlite3.Connection) -> None:
    """Per-sensor display settings (names, units, hidden), written by web."""
    conn.execute(sensor_settings.DDL)


def _v4_sensor_time_indexes(conn: sqlite3.Connection) -> None:
    """A sensor's raw rows and blocks in time order: a filter on few sensors seeks, never scans.

    Without them `/api/readings?sensor=` over a month walked every sensor's
    rows of that month (docs/architecture.md, "History storage").
    """
    conn.execute("CREATE INDEX raw_recent_sensor ON raw_recent (sid, ts)")
    conn.execute("CREATE INDEX raw_blocks_sensor ON raw_blocks (sid, hour)")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _v1_tiers,
    _v2_alerts,
    _v3_sensor_settings,
    _v4_sensor_time_indexes,
]
VERSION = len(MIGRATIONS)


def version(conn: sqlite3.Connection) -> int:
    """The database's schema version (0: unversioned or empty)."""
    return conn.execute("PRAGMA user_version").fetchone()[0]


def check(conn: sqlite3.Connection) -> None:
    """Raise SchemaError unless the database is at the version this code knows."""
    found = version(conn)
    if found < VERSION:
        raise SchemaError(
            f"the history is at schema version {found}; the recorder upgrades it"
            f" to {VERSION} when it starts (is it running?)"
        )
    if found > VERSION:
        raise SchemaError(
            f"the history is at schema version {found}, newer than this server's"
            f" {VERSION}: upgrade the web server too"
        )


def upgrade(conn: sqlite3.Connection, copy_v0: CopyRows | None = None) -> int:
    """Run the steps the database has not had; return the version reached.

    `copy_v0` moves a batch of the unversioned schema's readings into the
    tiers (store.init_db passes it): without it they wait in `v0_readings`.
    """
    found = version(conn)
    if found > VERSION:
        raise SchemaError(f"the history is at schema version {found}; this code knows {VERSION}")
    conn.commit()
    for number in range(found + 1, VERSION + 1):
        logger.info("upgrading the history schema to version %d", number)
        conn.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[number - 1](conn)
            conn.execute(f"PRAGMA user_version = {number}")
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
    if copy_v0 is not None and _has_table(conn, "v0_readings"):
        _copy_v0(conn, copy_v0)
    return VERSION


def _copy_v0(conn: sqlite3.Connection, copy_rows: CopyRows) -> None:
    """Move the unversioned schema's readings into the tiers, a batch per transaction."""
    copied = 0
    while True:
        rows = conn.execute(
            "SELECT id, source, sensor, seq, ts, stream_ms, stream_n, body FROM v0_readings"
            " ORDER BY id LIMIT ?",
            (COPY_BATCH,),
        ).fetchall()
        if not rows:
            break
        with conn:
            copy_rows(conn, rows)
            conn.execute("DELETE FROM v0_readings WHERE id <= ?", (rows[-1][0],))
        copied += len(rows)
    with conn:
        conn.execute("DROP TABLE v0_readings")
    logger.info("copied %d readings from the unversioned schema", copied)
