"""python -m recorder backup: a consistent copy while the recorder writes."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from recorder import backup
from shared import migrations, store
from shared.events import Event
from shared.reading import Reading

T0 = 1763712000.0


def batch(start: int, n: int) -> list[Event]:
    return [
        Event(None, Reading(source="pi", sensor="demo", ts=T0 + i, seq=i, values={"x_v": i}))
        for i in range(start, start + n)
    ]


def test_a_backup_taken_while_writing_is_whole_and_opens(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    writer = store.connect(path)
    store.init_db(writer)
    store.insert_events(writer, batch(0, 5000))
    stop = threading.Event()

    def keep_writing() -> None:
        conn = store.connect(path)
        n = 5000
        while not stop.is_set():
            store.insert_events(conn, batch(n, 200))
            n += 200
        conn.close()

    thread = threading.Thread(target=keep_writing)
    thread.start()
    try:
        assert backup.run(path, [str(tmp_path / "copy.sqlite3")]) == 0
    finally:
        stop.set()
        thread.join()
    copy = store.connect(tmp_path / "copy.sqlite3", readonly=True)
    migrations.check(copy)
    readings = store.query_readings(copy, since=0, until=4e9, limit=10_000_000)
    # A snapshot: every batch whole, the first 5,000 all there, seqs without holes.
    assert len(readings) >= 5000
    assert len(readings) % 200 == 0
    assert [r.seq for r in readings] == list(range(len(readings)))
    buckets = store.series(
        copy, source="pi", sensor="demo", metric="x_v", since=0, until=4e9, points=1
    )
    assert sum(b.n for b in buckets) == len(readings)


@pytest.mark.parametrize(
    ("setup", "says"),
    [
        ("no-history", "there is no history"),
        ("exists", "exists already"),
        ("no-dir", "not a directory"),
    ],
)
def test_a_backup_that_cannot_be_made_says_why(
    tmp_path: Path, capsys, setup: str, says: str
) -> None:
    path = tmp_path / "history.sqlite3"
    if setup != "no-history":
        store.init_db(store.connect(path))
    target = tmp_path / "copy.sqlite3"
    if setup == "exists":
        target.write_text("precious")
    if setup == "no-dir":
        target = tmp_path / "missing" / "copy.sqlite3"
    assert backup.run(path, [str(target)]) == 1
    assert says in capsys.readouterr().err
    if setup == "exists":
        assert target.read_text() == "precious"
