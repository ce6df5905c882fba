"""The SQLite store: idempotent inserts, queries, downsampling in SQL."""

from __future__ import annotations

import sqlite3

from shared import store
from shared.events import Event
from shared.reading import Reading

T0 = 1763712000.0


def event(
    i: int,
    *,
    sensor: str = "demo",
    value: float | None = None,
    seq: int | None = -1,
    with_id: bool = True,
) -> Event:
    reading = Reading(
        source="pi",
        sensor=sensor,
        ts=T0 + i,
        seq=i if seq == -1 else seq,
        values={"temperature_c": float(i if value is None else value)},
    )
    return Event(f"{int((T0 + i) * 1000)}-0" if with_id else None, reading)


def test_insert_is_idempotent_on_source_sensor_seq(db: sqlite3.Connection) -> None:
    assert store.insert_events(db, [event(i) for i in range(10)]) == 10
    assert store.insert_events(db, [event(i) for i in range(5, 15)]) == 5
    rows = store.query_readings(db, since=T0, until=T0 + 100, limit=100)
    assert [r.seq for r in rows] == list(range(15))


def test_readings_without_seq_are_keyed_by_time(db: sqlite3.Connection) -> None:
    events = [event(i, seq=None, with_id=False) for i in range(3)]
    assert store.insert_events(db, events) == 3
    assert store.insert_events(db, events) == 0


def test_rollup_is_not_counted_twice_on_replay(db: sqlite3.Connection) -> None:
    store.insert_events(db, [event(i) for i in range(120)])
    store.insert_events(db, [event(i) for i in range(120)])
    buckets = store.series(
        db,
        source="pi",
        sensor="demo",
        metric="temperature_c",
        since=T0,
        until=T0 + 120 * 60,
        points=10,
    )
    assert sum(b.n for b in buckets) == 120


def test_query_filters_and_limit(db: sqlite3.Connection) -> None:
    store.insert_events(db, [event(i) for i in range(10)])
    store.insert_events(db, [event(i, sensor="cpu") for i in range(10)])
    rows = store.query_readings(db, sensors=["cpu"], since=T0 + 2, until=T0 + 8, limit=3)
    assert [(r.sensor, r.seq) for r in rows] == [("cpu", 2), ("cpu", 3), ("cpu", 4)]
    assert store.query_readings(db, sources=["nobody"], since=T0, until=T0 + 99, limit=9) == []


def test_series_raw_buckets_have_min_avg_max(db: sqlite3.Connection) -> None:
    store.insert_events(db, [event(i, value=v) for i, v in enumerate([1, 3, 5, 7, 10, 20])])
    buckets = store.series(
        db, source="pi", sensor="demo", metric="temperature_c", since=T0, until=T0 + 6, points=2
    )
    assert [(b.t, b.min, b.avg, b.max, b.n) for b in buckets] == [
        (T0, 1.0, 3.0, 5.0, 3),
        (T0 + 3, 7.0, 37 / 3, 20.0, 3),
    ]


def test_series_over_days_uses_the_minute_rollup(db: sqlite3.Connection) -> None:
    # One reading a minute for two days, value = hour of the day.
    events = [event(m * 60, value=(m // 60) % 24, seq=m) for m in range(2 * 24 * 60)]
    store.insert_events(db, events)
    buckets = store.series(
        db,
        source="pi",
        sensor="demo",
        metric="temperature_c",
        since=T0,
        until=T0 + 2 * 86400,
        points=48,
    )
    assert len(buckets) == 48
    assert all(b.n == 60 and b.min == b.max == b.avg for b in buckets)
    assert [b.avg for b in buckets[:3]] == [0.0, 1.0, 2.0]


def test_series_of_a_missing_metric_is_empty(db: sqlite3.Connection) -> None:
    store.insert_events(db, [event(i) for i in range(5)])
    assert (
        store.series(
            db, source="pi", sensor="demo", metric="nothing_c", since=T0, until=T0 + 5, points=5
        )
        == []
    )


def test_events_after_a_stream_id_in_stream_order(db: sqlite3.Connection) -> None:
    store.insert_events(db, [event(i) for i in range(10)])
    after = store.events_after(db, event(6).id or "", limit=100)
    assert [e.reading.seq for e in after] == [7, 8, 9]
    assert after[0].id == event(7).id


def test_latest_and_high_water(db: sqlite3.Connection) -> None:
    store.insert_events(db, [event(i) for i in range(10)])
    store.insert_events(db, [event(3)])
    assert store.high_water(db) == {("pi", "demo"): 9}
    [latest] = store.latest(db)
    assert latest.reading.seq == 9
