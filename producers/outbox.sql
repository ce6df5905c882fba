-- A producer's own SQLite: every reading lands here before Redis.
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    sensor TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts REAL NOT NULL,
    body TEXT NOT NULL,          -- the reading as JSON
    sent_at REAL                 -- NULL until Redis accepted it
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_key ON outbox (source, sensor, seq);
-- The last seq of each (source, sensor), kept even when its rows are pruned.
CREATE TABLE IF NOT EXISTS seqs (
    source TEXT NOT NULL,
    sensor TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (source, sensor)
) WITHOUT ROWID;
-- MQTT messages the bridge stored, by a digest of packet id, topic and payload:
-- a broker's redelivery (DUP) of one is acknowledged, not stored again. Only the
-- last MAX_DELIVERIES are kept (producers/outbox.py says why that is enough).
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    digest BLOB NOT NULL UNIQUE
);
