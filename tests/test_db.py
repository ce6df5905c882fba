"""web/db.py: the history read-only, per request, and the hub's helpers over it."""

from __future__ import annotations

import time
from pathlib import Path

from shared import store
from shared.events import Event
from shared.reading import Reading
from web import db


def event(seq: int, stream_id: str) -> Event:
    values = {"temperature_c": 20.0 + seq}
    return Event(
        stream_id, Reading(source="pi", sensor="demo", ts=time.time(), seq=seq, values=values)
    )


def test_without_a_database_the_hub_starts_with_no_snapshot(tmp_path: Path) -> None:
    assert db.latest_events(tmp_path / "missing.sqlite3") == []
    assert not (tmp_path / "missing.sqlite3").exists()  # a read-only open never creates it


def test_the_latest_and_what_follows_a_stream_id(tmp_path: Path) -> None:
    path = tmp_path / "dashboard.sqlite3"
    conn = store.connect(path)
    store.init_db(conn)
    store.insert_events(conn, [event(1, "100-0"), event(2, "200-0"), event(3, "300-0")])
    conn.close()
    [latest] = db.latest_events(path)
    assert (latest.id, latest.reading.seq) == ("300-0", 3)
    assert [e.id for e in db.events_after(path, "100-0", limit=10)] == ["200-0", "300-0"]
    assert [e.id for e in db.events_after(path, "100-0", limit=1)] == ["200-0"]


def test_history_missing_is_503_with_a_reason(client, settings) -> None:
    settings.database_path.unlink()
    response = client.get("/api/readings")
    assert response.status_code == 503
    assert "recorder" in response.get_json()["error"]
