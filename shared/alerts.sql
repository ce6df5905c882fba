-- Alerts (docs/architecture.md, "Alerts"): written by the recorder's evaluator, read by web.
CREATE TABLE IF NOT EXISTS alert_rules (
    name TEXT PRIMARY KEY,
    body TEXT NOT NULL  -- the rule as JSON, for the dashboard's threshold lines
);
CREATE TABLE IF NOT EXISTS alert_state (
    rule TEXT NOT NULL,
    metric TEXT NOT NULL,  -- source/sensor/metric
    state TEXT NOT NULL,  -- ok, pending, firing
    since REAL NOT NULL,
    reason TEXT NOT NULL,
    value REAL,
    last_ts REAL,
    last_seq INTEGER,
    seen_at REAL NOT NULL,
    notified_at REAL,
    PRIMARY KEY (rule, metric)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alert_transitions (
    id INTEGER PRIMARY KEY,
    rule TEXT NOT NULL,
    metric TEXT NOT NULL,
    kind TEXT NOT NULL,  -- firing or resolved
    reason TEXT NOT NULL,  -- threshold or stale
    value REAL,
    threshold REAL NOT NULL,
    direction TEXT NOT NULL,
    clear REAL NOT NULL,
    since REAL NOT NULL,
    at REAL NOT NULL,
    repeat INTEGER NOT NULL,
    pending TEXT NOT NULL  -- JSON list of the targets not yet notified
);
CREATE INDEX IF NOT EXISTS alert_transitions_at ON alert_transitions (at);
