-- The dashboard's history. The recorder is its only writer; web reads it.
CREATE TABLE IF NOT EXISTS readings (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    sensor TEXT NOT NULL,
    seq INTEGER,
    ts REAL NOT NULL,
    stream_ms INTEGER,  -- the Redis stream id "ms-n", as two integers so it sorts
    stream_n INTEGER,
    body TEXT NOT NULL  -- the reading's values as JSON
);
-- (source, sensor, seq) is unique, so a replay or retry is a no-op; readings
-- from stock flask-sse publishers have no seq and are keyed by their time.
CREATE UNIQUE INDEX IF NOT EXISTS readings_seq
    ON readings (source, sensor, seq) WHERE seq IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS readings_noseq
    ON readings (source, sensor, ts) WHERE seq IS NULL;
CREATE INDEX IF NOT EXISTS readings_time ON readings (source, sensor, ts);
CREATE INDEX IF NOT EXISTS readings_ts ON readings (ts);
-- Resume after a stream id the Redis stream no longer holds.
CREATE INDEX IF NOT EXISTS readings_stream
    ON readings (stream_ms, stream_n) WHERE stream_ms IS NOT NULL;

-- One row per metric and minute, kept by the recorder as it inserts, so a
-- 30-day series reads 43,200 rows instead of 2.6 million.
CREATE TABLE IF NOT EXISTS rollup_1m (
    source TEXT NOT NULL,
    sensor TEXT NOT NULL,
    metric TEXT NOT NULL,
    minute INTEGER NOT NULL,  -- Unix time // 60
    vmin REAL NOT NULL,
    vmax REAL NOT NULL,
    vsum REAL NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (source, sensor, metric, minute)
) WITHOUT ROWID;

-- The newest reading of each sensor, for /api/sensors and a new tab.
CREATE TABLE IF NOT EXISTS latest (
    source TEXT NOT NULL,
    sensor TEXT NOT NULL,
    seq INTEGER,
    ts REAL NOT NULL,
    stream_id TEXT,
    body TEXT NOT NULL,
    PRIMARY KEY (source, sensor)
) WITHOUT ROWID;
