-- thumpflow SQLite store, schema version 9: alerts.
--
--   alerts          one row per raised alert; cleared_at set when its condition
--                   stopped; acknowledged_* when an operator acknowledged it.
--   alerts_active   at most one active (uncleared) alert per (kind, subject), so a
--                   lasting condition is one alert, even across restarts.
--   alerts_recent   the listing: newest first.

CREATE TABLE alerts (
    alert_id        INTEGER PRIMARY KEY,
    kind            TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    severity        TEXT    NOT NULL,
    message         TEXT    NOT NULL,
    raised_at       REAL    NOT NULL,
    cleared_at      REAL,
    acknowledged_by TEXT,
    acknowledged_at REAL,
    ack_reason      TEXT
);

CREATE UNIQUE INDEX alerts_active ON alerts (kind, subject) WHERE cleared_at IS NULL;
CREATE INDEX alerts_recent ON alerts (raised_at);
