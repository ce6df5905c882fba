"""Schema versions: an old database upgrades keeping every reading; web refuses unknown versions."""

from __future__ import annotations

import json
import sqlite3
import struct
from pathlib import Path

import pytest

from shared import migrations, store

FIXTURE = Path(__file__).parent / "fixtures" / "history_v0.sql"


def v0_database(path: Path) -> list[tuple]:
    """Load the fixture (written by the unversioned release); its readings."""
    conn = sqlite3.connect(path)
    conn.executescript(FIXTURE.read_text())
    rows = conn.execute("SELECT source, sensor, seq, ts, stream_ms, stream_n, body FROM readings")
    found = [(*row[:6], json.loads(row[6])) for row in rows]
    conn.close()
    return found


def test_upgrading_a_v0_database_keeps_every_reading(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old = v0_database(path)
    assert len(old) == 256
    conn = store.connect(path)
    store.init_db(conn)
    assert migrations.version(conn) == migrations.VERSION
    readings = store.query_readings(conn, since=0, until=4e9, limit=1000)
    found = sorted((r.source, r.sensor, r.seq, r.ts, r.values) for r in readings)
    assert found == sorted((s, n, q, t, v) for s, n, q, t, _, _, v in old)
    # Bit for bit, including 5e-324, the largest double and -0.0.
    lab_new = [r.values["x_v"] for r in sorted(readings, key=lambda r: r.ts) if r.source == "lab"]
    lab_old = [row[6]["x_v"] for row in sorted(old, key=lambda row: row[3]) if row[0] == "lab"]
    assert [struct.pack("<d", v) for v in lab_new] == [struct.pack("<d", v) for v in lab_old]
    assert store.high_water(conn)[("pi", "bme280")] == 199
    assert {e.reading.key for e in store.latest(conn)} == {
        ("pi", "bme280"),
        ("server", "hwmon"),
        ("lab", "demo"),
    }


def test_the_upgrade_rebuilds_the_rollups_and_the_stream_ids(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old = v0_database(path)
    conn = store.connect(path)
    store.init_db(conn)
    buckets = store.series(
        conn, source="pi", sensor="bme280", metric="humidity_pct", since=0, until=4e9, points=1
    )
    assert sum(b.n for b in buckets) == 200
    first = min(row for row in old if row[0] == "pi")
    after = store.events_after(conn, f"{first[4]}-{first[5]}", limit=1000)
    assert len([e for e in after if e.reading.source == "pi"]) == 199


def test_an_interrupted_copy_resumes_without_doubling(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    v0_database(path)
    conn = store.connect(path)
    conn.execute("BEGIN IMMEDIATE")
    migrations._v1_tiers(conn)
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    # Half copied, then the process died before deleting the batch.
    rows = conn.execute("SELECT * FROM v0_readings ORDER BY id LIMIT 100").fetchall()
    with conn:
        store.insert_rows(conn, [store.v0_event(tuple(row)) for row in rows])
    store.init_db(conn)
    assert len(store.query_readings(conn, since=0, until=4e9, limit=1000)) == 256
    buckets = store.series(
        conn, source="pi", sensor="bme280", metric="humidity_pct", since=0, until=4e9, points=1
    )
    assert sum(b.n for b in buckets) == 200


def test_a_fresh_database_gets_the_current_version(tmp_path: Path) -> None:
    conn = store.connect(tmp_path / "new.sqlite3")
    store.init_db(conn)
    migrations.check(conn)
    assert migrations.version(conn) == migrations.VERSION
    store.init_db(conn)  # twice is once
    assert migrations.version(conn) == migrations.VERSION


@pytest.mark.parametrize(("found", "says"), [(0, "the recorder upgrades it"), (99, "newer")])
def test_check_refuses_other_versions_with_a_sentence(
    tmp_path: Path, found: int, says: str
) -> None:
    conn = store.connect(tmp_path / "x.sqlite3")
    conn.execute(f"PRAGMA user_version = {found}")
    with pytest.raises(migrations.SchemaError, match=says):
        migrations.check(conn)


def test_the_recorder_refuses_a_newer_database(tmp_path: Path) -> None:
    conn = store.connect(tmp_path / "x.sqlite3")
    conn.execute("PRAGMA user_version = 99")
    with pytest.raises(migrations.SchemaError, match="99"):
        migrations.upgrade(conn)


def test_an_appended_step_runs_once_and_a_failing_one_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = store.connect(tmp_path / "x.sqlite3")
    store.init_db(conn)

    def add_table(c: sqlite3.Connection) -> None:
        c.execute("CREATE TABLE notes (note TEXT PRIMARY KEY)")

    def broken(c: sqlite3.Connection) -> None:
        c.execute("CREATE TABLE half_done (x)")
        raise sqlite3.OperationalError("boom")

    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, add_table, broken])
    monkeypatch.setattr(migrations, "VERSION", migrations.VERSION + 2)
    with pytest.raises(sqlite3.OperationalError):
        migrations.upgrade(conn)
    assert migrations.version(conn) == migrations.VERSION - 1
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "notes" in tables
    assert "half_done" not in tables
