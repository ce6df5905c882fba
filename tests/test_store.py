"""The SQLite store: idempotent inserts, queries, downsampling in SQL."""

from __future__ import annotations

import functools
import itertools
import sqlite3

import pytest

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


def demo_series(
    db: sqlite3.Connection, since: float, until: float, points: int, metric: str = "temperature_c"
) -> list[store.Bucket]:
    """`store.series` of the demo sensor's metric."""
    return store.series(
        db, source="pi", sensor="demo", metric=metric, since=since, until=until, points=points
    )


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
    buckets = demo_series(db, T0, T0 + 120 * 60, 10)
    assert sum(b.n for b in buckets) == 120


def test_query_filters_and_limit(db: sqlite3.Connection) -> None:
    store.insert_events(db, [event(i) for i in range(10)])
    store.insert_events(db, [event(i, sensor="cpu") for i in range(10)])
    rows = store.query_readings(db, sensors=["cpu"], since=T0 + 2, until=T0 + 8, limit=3)
    assert [(r.sensor, r.seq) for r in rows] == [("cpu", 2), ("cpu", 3), ("cpu", 4)]
    assert store.query_readings(db, sources=["nobody"], since=T0, until=T0 + 99, limit=9) == []


def test_series_raw_buckets_have_min_avg_max(db: sqlite3.Connection) -> None:
    store.insert_events(db, [event(i, value=v) for i, v in enumerate([1, 3, 5, 7, 10, 20])])
    buckets = demo_series(db, T0, T0 + 6, 2)
    assert [(b.t, b.min, b.avg, b.max, b.n) for b in buckets] == [
        (T0, 1.0, 3.0, 5.0, 3),
        (T0 + 3, 7.0, 37 / 3, 20.0, 3),
    ]


def test_series_over_days_uses_the_minute_rollup(db: sqlite3.Connection) -> None:
    # One reading a minute for two days, value = hour of the day.
    events = [event(m * 60, value=(m // 60) % 24, seq=m) for m in range(2 * 24 * 60)]
    store.insert_events(db, events)
    buckets = demo_series(db, T0, T0 + 2 * 86400, 48)
    assert len(buckets) == 48
    assert all(b.n == 60 and b.min == b.max == b.avg for b in buckets)
    assert [b.avg for b in buckets[:3]] == [0.0, 1.0, 2.0]


def test_series_of_a_missing_metric_is_empty(db: sqlite3.Connection) -> None:
    store.insert_events(db, [event(i) for i in range(5)])
    assert demo_series(db, T0, T0 + 5, 5, metric="nothing_c") == []


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


def pack_all(db: sqlite3.Connection) -> int:
    packed = 0
    while n := store.pack_one(db, before=T0 + 10 * 86400):
        packed += n
    return packed


def series_n(db: sqlite3.Connection, since: float, until: float, points: int = 1) -> int:
    return sum(b.n for b in demo_series(db, since, until, points))


def test_packed_hours_read_back_exactly_and_replays_stay_no_ops(db: sqlite3.Connection) -> None:
    events = [event(i * 7, value=i / 3) for i in range(2000)]  # about 4 hours
    store.insert_events(db, events)
    assert pack_all(db) == 2000
    assert db.execute("SELECT count(*) FROM raw_recent").fetchone()[0] == 0
    back = store.query_readings(db, since=T0, until=T0 + 86400, limit=5000)
    assert [(r.seq, r.ts, r.values) for r in back] == [
        (e.reading.seq, e.reading.ts, e.reading.values) for e in events
    ]
    # A replay of packed readings adds nothing, not even to the rollups.
    assert store.insert_events(db, events[100:300]) == 0
    assert series_n(db, T0, T0 + 86400) == 2000


def test_a_late_reading_joins_its_packed_hour(db: sqlite3.Connection) -> None:
    store.insert_events(db, [event(i * 2) for i in range(100)])
    pack_all(db)
    late = event(101, seq=5000, value=99.0)  # between packed readings
    assert store.insert_events(db, [late]) == 1
    assert store.insert_events(db, [late]) == 0
    pack_all(db)
    assert store.insert_events(db, [late]) == 0
    back = store.query_readings(db, since=T0, until=T0 + 1000, limit=500)
    assert [r.seq for r in back] == [*range(0, 101, 2), 5000, *range(102, 200, 2)]
    assert series_n(db, T0, T0 + 3600) == 101


def test_pages_follow_the_cursor_to_the_end(db: sqlite3.Connection) -> None:
    store.insert_events(db, [event(i * 5) for i in range(500)])
    store.insert_events(db, [event(i * 5, sensor="cpu") for i in range(500)])
    pack_all(db)
    store.insert_events(db, [event(3000 + i, sensor="cpu", seq=9000 + i) for i in range(5)])
    seen, cursor, pages = [], None, 0
    while True:
        page, cursor = store.page_readings(db, since=T0, until=T0 + 86400, limit=333, cursor=cursor)
        seen += page
        pages += 1
        if cursor is None:
            break
    assert pages == 4
    assert len(seen) == 1005
    assert [r.ts for r in seen] == sorted(r.ts for r in seen)
    assert len({(r.sensor, r.seq) for r in seen}) == 1005


def test_a_forged_cursor_is_refused() -> None:
    with pytest.raises(store.BadCursor):
        store.parse_cursor("nan_1")
    with pytest.raises(store.BadCursor):
        store.parse_cursor("yesterday")


def test_series_picks_the_finest_tier_that_covers_the_range(db: sqlite3.Connection) -> None:
    # One reading a second for 3 hours.
    store.insert_events(db, [event(i) for i in range(3 * 3600)])

    def tier(since, width):
        return store.choose_tier(store.oldest(db, 1, 1), since, since + 500 * width, width)

    assert tier(T0, 7.2) == 0
    assert tier(T0, 120) == 1
    assert tier(T0, 4000) == 1
    assert tier(T0, 7200) == 2
    # Raw pruned: a range reaching before it is answered by a rollup, whole.
    db.execute("DELETE FROM raw_recent WHERE ts < ?", (T0 + 3600,))
    assert tier(T0, 7.2) == 1
    assert tier(T0 + 3600, 7.2) == 0
    assert series_n(db, T0, T0 + 3 * 3600, points=500) == 3 * 3600 - 3600 + 3600


def test_rollup_buckets_are_whole_minutes(db: sqlite3.Connection) -> None:
    store.insert_events(db, [event(i) for i in range(8 * 3600)])
    buckets = demo_series(db, T0 + 17, T0 + 8 * 3600, 100)
    assert len(buckets) <= 100
    assert {b2.t - b1.t for b1, b2 in itertools.pairwise(buckets)} == {300}
    assert {b.n for b in buckets} == {300}
    assert sum(b.n for b in buckets) == 8 * 3600


def test_pruning_takes_small_steps_and_keeps_the_tiers_it_should(db: sqlite3.Connection) -> None:
    # Two days at one reading a minute, then prune as of noon on day 3.
    store.insert_events(db, [event(m * 60, seq=m) for m in range(2 * 1440)])
    pack_all(db)
    keep = store.Retention(raw_days=1, minute_days=1.5, hour_days=0)
    now = T0 + 2.5 * 86400
    steps = []
    while n := store.prune_one(db, keep, now):
        steps.append(n)
    assert steps
    assert max(steps) <= 1440
    oldest_raw = store.query_readings(db, since=0, until=4e9, limit=1)[0].ts
    assert now - 86400 <= oldest_raw < now - 86400 + 3600
    minutes = db.execute("SELECT min(t) FROM rollup_1m").fetchone()[0] * 60
    assert now - 1.5 * 86400 <= minutes < now - 1.5 * 86400 + 60
    assert db.execute("SELECT count(*) FROM rollup_1h").fetchone()[0] == 48
    # The whole two days are still answered, from the hour tier.
    assert series_n(db, T0, T0 + 2 * 86400, points=48) == 2 * 1440


def _plans(conn: sqlite3.Connection, work) -> dict[str, list[str]]:
    """Run `work`, then EXPLAIN QUERY PLAN every statement it ran: {sql: plan lines}."""
    ran: list[str] = []
    conn.set_trace_callback(ran.append)
    try:
        work()
    finally:
        conn.set_trace_callback(None)
    return {
        sql: [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql)]
        for sql in dict.fromkeys(ran)
        if sql.startswith(("SELECT", "WITH"))
    }


RAW = ("raw_recent", "raw_blocks", "rollup_1m", "rollup_1h")


def test_every_history_query_seeks_by_sensor(db: sqlite3.Connection) -> None:
    """A filter on one sensor seeks its rows in an index: no query walks the others'.

    Before schema version 4, `/api/readings?sensor=` walked every sensor's rows
    of the range (26M of them for 31 days of 10 sensors at 1 Hz: 7 s).
    """
    # Packed hours, unpacked ones and a sensor with no readings at all.
    for n in range(3):
        store.insert_events(db, [event(i * 10, sensor=f"s{n}") for i in range(5 * 360)])
    store.insert_events(db, [event(0, sensor="quiet")])
    db.execute(
        "DELETE FROM raw_recent WHERE sid = (SELECT sid FROM sensors WHERE sensor = 'quiet')"
    )
    while store.pack_one(db, before=T0 + 3 * store.HOUR):
        pass
    until = T0 + 31 * store.DAY
    shapes = {
        "readings": lambda s: store.page_readings(db, sensors=[s], since=0, until=until, limit=50),
        "series raw": lambda s: store.series(
            db, source="pi", sensor=s, metric="temperature_c", since=T0, until=T0 + 3600, points=9
        ),
        "series rollup": lambda s: store.series(
            db, source="pi", sensor=s, metric="temperature_c", since=0, until=until, points=9
        ),
        "export": lambda s: store.page_raw(
            db, store.sensor_ids(store.names(db), (), [s]), 0, until, 99
        ),
        "export 1h": lambda s: store.page_rollups(
            db, 2, store.sensor_ids(store.names(db), (), [s]), 0, until, 99
        ),
    }
    checked = 0
    for name, shape in shapes.items():
        for sensor in ("s1", "quiet"):
            for sql, plan in _plans(db, functools.partial(shape, sensor)).items():
                for line in plan:
                    table = next((t for t in RAW if f" {t} " in f"{line} "), None)
                    if table is None:
                        continue
                    checked += 1
                    assert line.startswith("SEARCH"), (name, sql, plan)
                    # The sensor first: the seek lands on its rows only.
                    assert "(sid=?" in line or "(hour=? AND sid=?)" in line, (name, sql, plan)
    assert checked > 20
