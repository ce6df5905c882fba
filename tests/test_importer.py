"""python -m recorder import: seed files, JSON lines and our CSV; idempotent; never a traceback."""

from __future__ import annotations

import io
import json
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from recorder import importer
from shared import store

T0 = 1763712000.0
FORK_START = datetime(2025, 4, 5, 10, 0, 0)


def seed_upstream(path: Path, rows: int = 100) -> None:
    """The upstream temperature.db: local-time TEXT dates, no keys."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE TEMPERATURE (DATE TEXT, TEMPERATURE REAL)")
    conn.execute("CREATE TABLE PRESSURE (DATE TEXT, PRESSURE REAL)")
    for i in range(rows):
        date = f"2022-06-{1 + i // 96:02d} {i % 96 // 4:02d}:{i % 4 * 15:02d}:00"
        conn.execute("INSERT INTO TEMPERATURE VALUES (?, ?)", (date, 20 + i / 100))
        if i % 10 == 0:
            conn.execute("INSERT INTO PRESSURE VALUES (?, ?)", (date, 1000 + i))
    conn.execute("INSERT INTO TEMPERATURE VALUES ('yesterday', 21.0)")  # a bad row
    conn.commit()
    conn.close()


def seed_fork(path: Path, rows: int = 100) -> None:
    """The fork's sensor_data.db: UTC CURRENT_TIMESTAMP dates, a NULL now and then."""
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE sensor_data (DATE DATETIME DEFAULT CURRENT_TIMESTAMP,"
        " TEMPERATURE REAL, fan2 INTEGER, ppt REAL)"
    )
    for i in range(rows):
        conn.execute(
            "INSERT INTO sensor_data VALUES (?, ?, ?, ?)",
            (
                (FORK_START + timedelta(seconds=i)).strftime("%Y-%m-%d %H:%M:%S"),
                45.5 + i % 3,
                700 + i,
                None if i % 7 else 31.5,
            ),
        )
    conn.commit()
    conn.close()


def run(db: sqlite3.Connection, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return importer.run(db, list(argv), out), out.getvalue()


def all_readings(db: sqlite3.Connection) -> list:
    return store.query_readings(db, since=0, until=4e9, limit=10_000)


def test_upstream_temperature_db_in_its_local_zone(db, tmp_path: Path) -> None:
    path = tmp_path / "temperature.db"
    seed_upstream(path)
    code, out = run(db, str(path), "--tz", "Europe/Madrid")
    assert code == 0
    assert "100 readings added" in out
    assert "1 bad records skipped" in out
    readings = all_readings(db)
    assert {(r.source, r.sensor) for r in readings} == {("temperature", "bme280")}
    # 2022-06-01 00:00 in Madrid (CEST, UTC+2) is 2022-05-31 22:00 UTC.
    assert readings[0].ts == 1654034400.0
    assert readings[0].values == {"temperature_c": 20.0, "pressure_hpa": 1000.0}
    assert readings[1].values == {"temperature_c": 20.01}


def test_fork_sensor_data_db_is_utc_and_maps_the_columns(db, tmp_path: Path) -> None:
    path = tmp_path / "sensor_data.db"
    seed_fork(path)
    code, _ = run(db, str(path), "--source", "x300")
    assert code == 0
    readings = all_readings(db)
    assert len(readings) == 100
    first = readings[0]
    assert (first.source, first.sensor, first.ts) == ("x300", "hwmon", 1743847200.0)
    assert first.values == {"tctl_c": 45.5, "fan2_rpm": 700.0, "ppt_w": 31.5}
    assert readings[1].values == {"tctl_c": 46.5, "fan2_rpm": 701.0}


def test_importing_twice_is_once_even_after_the_raw_tier_is_pruned(db, tmp_path: Path) -> None:
    path = tmp_path / "sensor_data.db"
    seed_fork(path)
    run(db, str(path))
    db.execute("DELETE FROM raw_recent")  # the recorder pruned the old raw readings
    db.commit()
    code, out = run(db, str(path))
    assert code == 0
    assert "0 readings added" in out
    buckets = store.series(
        db, source="sensor_data", sensor="hwmon", metric="tctl_c", since=0, until=4e9, points=1
    )
    assert sum(b.n for b in buckets) == 100


def test_an_interrupted_import_resumes(db, tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "sensor_data.db"
    seed_fork(path, rows=5000)
    calls = []

    def stop_after_first(done: int, total: int) -> None:
        calls.append(done)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        importer.import_file(db, path, importer.Options(), stop_after_first)
    assert calls == [importer.BATCH]
    result = importer.import_file(db, path, importer.Options())
    assert (result.resumed_at, result.added, result.already) == (importer.BATCH, 3000, 0)
    assert len(all_readings(db)) == 5000


def test_json_lines_and_our_csv_round_trip(db, tmp_path: Path) -> None:
    lines = [
        json.dumps(
            {
                "source": "pi",
                "sensor": "bme280",
                "ts": T0 + i,
                "seq": i,
                "values": {"temperature_c": 20 + i / 3, "humidity_pct": 40.5},
            }
        )
        for i in range(50)
    ]
    jsonl = tmp_path / "once.jsonl"
    jsonl.write_text("\n".join([*lines, "{not json", '{"source": "pi"}']) + "\n")
    code, out = run(db, str(jsonl))
    assert code == 0
    assert "50 readings added, 0 already stored, 2 bad records skipped" in out
    # Export what is stored as CSV, import it into a fresh database: the same readings.
    csv_path = tmp_path / "readings.csv"
    header = ",".join(importer.CSV_HEADER)
    rows = [
        f"{r.ts!r},x,{r.source},{r.sensor},{r.seq},{m},{v!r}"
        for r in all_readings(db)
        for m, v in r.values.items()
    ]
    csv_path.write_text("\n".join([header, *rows, "1,2,3"]) + "\n")
    fresh = store.connect(tmp_path / "fresh.sqlite3")
    store.init_db(fresh)
    code, out = run(fresh, str(csv_path))
    assert "50 readings added" in out
    assert "1 bad records skipped" in out
    assert [r.to_dict() for r in all_readings(fresh)] == [r.to_dict() for r in all_readings(db)]


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"hello world\n", "is not a file this command reads"),
        (b"t,time_utc,source,sensor,metric,min,avg,max,n\n", "rollup tier"),
        (b"SQLite format 3\x00" + b"\x00" * 200, "SQLite file that cannot be read"),
    ],
)
def test_an_unknown_file_gets_one_sentence(
    db, tmp_path: Path, capsys, content: bytes, says: str
) -> None:
    path = tmp_path / "mystery.dat"
    path.write_bytes(content)
    code, _ = run(db, str(path))
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert says in err
    assert len(err.splitlines()) == 1
    assert "Traceback" not in err


def test_a_database_without_seed_tables_is_named(db, tmp_path: Path, capsys) -> None:
    path = tmp_path / "other.db"
    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.commit()
    assert run(db, str(path))[0] == 1
    assert "without the seed project's tables" in capsys.readouterr().err


def test_bad_options_are_one_sentence(db, tmp_path: Path, capsys) -> None:
    assert run(db, "x.db", "--tz", "Mars/Olympus")[0] == 2
    assert "--tz" in capsys.readouterr().err
    assert run(db, "x.db", "--source", "bad name")[0] == 2
    assert "--source" in capsys.readouterr().err


def test_progress_is_drawn_on_a_terminal_only() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        progress = importer.Progress("f.db", stream)
        progress(500, 1000)
        progress.close()
    assert "50%" in tty.getvalue()
    assert pipe.getvalue() == ""


def test_max_sensors_stops_an_import_before_new_sensors_and_loses_nothing(
    db, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Past MAX_SENSORS the import stops, says why, and resumes there once it is raised."""
    path = tmp_path / "readings.jsonl"
    lines = [
        json.dumps(
            {"source": "pi", "sensor": f"s{i // 3000}", "ts": T0 + i, "seq": i,
             "values": {"temperature_c": 20.0}}
        )
        for i in range(9000)
    ]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    out = io.StringIO()
    assert importer.run(db, [str(path)], out, max_sensors=2) == 1
    assert "past MAX_SENSORS" in out.getvalue()
    assert "pi/s2" in caplog.text
    assert db.execute("SELECT count(*) FROM sensors").fetchone()[0] == 2
    assert store.count_readings(db) == 6000
    out = io.StringIO()
    assert importer.run(db, [str(path)], out, max_sensors=3) == 0
    assert store.count_readings(db) == 9000
    assert "3,000 readings added" in out.getvalue()
