-- The dashboard's history, schema version 1 (see shared/migrations.py).
-- The recorder is its only writer; web reads it. Names are dictionary-coded:
-- every other table refers to a sensor by `sid` and a metric by `mid`.

-- One row per (source, sensor): its id, its high-water mark and newest reading.
CREATE TABLE sensors (
    sid INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    sensor TEXT NOT NULL,
    max_seq INTEGER,            -- the recorder's mark: highest seq stored
    blocks_until INTEGER NOT NULL DEFAULT 0,  -- hours before this may be in raw_blocks
    last_ts REAL,
    last_seq INTEGER,
    last_id TEXT,               -- its Redis stream id
    last_body TEXT,             -- its values as JSON
    UNIQUE (source, sensor)
);

CREATE TABLE metrics (
    mid INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

-- Raw tier, recent part: one row per reading as it arrives. Keyed by its
-- time, so a replay or retry of the same reading is a no-op. The recorder
-- packs closed hours into raw_blocks (shared/codec.py).
CREATE TABLE raw_recent (
    ts REAL NOT NULL,
    sid INTEGER NOT NULL,
    seq INTEGER,
    stream_ms INTEGER,          -- the Redis stream id "ms-n", as two integers so it sorts
    stream_n INTEGER,
    body BLOB NOT NULL,         -- values: shared/codec.py pack_values
    PRIMARY KEY (ts, sid)
) WITHOUT ROWID;
-- Resume a browser after a stream id the Redis stream no longer holds.
CREATE INDEX raw_recent_stream ON raw_recent (stream_ms, stream_n) WHERE stream_ms IS NOT NULL;

-- Raw tier, packed: all readings of one sensor in one hour, exact, compressed.
CREATE TABLE raw_blocks (
    hour INTEGER NOT NULL,      -- Unix time // 3600
    sid INTEGER NOT NULL,
    n INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (hour, sid)
) WITHOUT ROWID;

-- Rollup tiers: min/avg/max/n per metric and minute or hour, kept by the
-- recorder as readings arrive (a late or imported one updates its buckets).
CREATE TABLE rollup_1m (
    sid INTEGER NOT NULL,
    mid INTEGER NOT NULL,
    t INTEGER NOT NULL,         -- Unix time // 60
    vmin REAL NOT NULL,
    vmax REAL NOT NULL,
    vsum REAL NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (sid, mid, t)
) WITHOUT ROWID;

CREATE TABLE rollup_1h (
    sid INTEGER NOT NULL,
    mid INTEGER NOT NULL,
    t INTEGER NOT NULL,         -- Unix time // 3600
    vmin REAL NOT NULL,
    vmax REAL NOT NULL,
    vsum REAL NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (sid, mid, t)
) WITHOUT ROWID;

-- Files `python -m recorder import` has read, by content digest, and how far:
-- importing one again (or after an interruption) adds nothing twice, even
-- where the raw tier was pruned.
CREATE TABLE imports (
    digest TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    records INTEGER NOT NULL,   -- input records consumed so far
    complete INTEGER NOT NULL DEFAULT 0,
    at REAL NOT NULL
);
