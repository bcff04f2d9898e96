-- thumpflow SQLite store, schema version 1.
--
-- Integer keys everywhere a row is referenced; text ids only where callers
-- look rows up by them. Indexes exist only for the queries the store runs:
--   events.event_id          Store.event()
--   idempotency (key)        duplicate detection on admit
--   deliveries_pending       load_pending(destination) in delivery_id order, and the
--                            oldest pending delivery per (channel, destination)
--   deliveries_dead          dead_letters() / replay(), oldest first
--   audit_subject            audit(subject)
--   rejects_channel          rejects(channel)
-- Counters for status live in channel_counters / outbox_counters and are
-- maintained in the same transactions as the rows they count.

CREATE TABLE events (
    event_seq       INTEGER PRIMARY KEY,
    event_id        TEXT    NOT NULL UNIQUE,
    idempotency_key TEXT    NOT NULL,
    source_system   TEXT    NOT NULL,
    channel_id      TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    entity_type     TEXT    NOT NULL,
    entity_id       TEXT    NOT NULL,
    occurred_at     REAL    NOT NULL,
    received_at     REAL    NOT NULL,
    content_type    TEXT    NOT NULL,
    sequence        INTEGER,
    lane            INTEGER NOT NULL,
    location        TEXT,
    actor           TEXT,
    correlation_id  TEXT,
    causation_id    TEXT,
    body            BLOB    NOT NULL
);

CREATE TABLE idempotency (
    key         TEXT NOT NULL PRIMARY KEY,
    event_id    TEXT NOT NULL,
    ack_code    TEXT NOT NULL,
    received_at REAL NOT NULL
) WITHOUT ROWID;

-- status: 0 pending, 1 delivered, 2 dead, 3 superseded.
CREATE TABLE deliveries (
    delivery_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    event_seq       INTEGER NOT NULL,
    destination_id  TEXT    NOT NULL,
    channel_id      TEXT    NOT NULL,
    ordering_key    TEXT    NOT NULL,
    lane            INTEGER NOT NULL,
    sequence        INTEGER,
    created_at      REAL    NOT NULL,
    status          INTEGER NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at REAL    NOT NULL,
    first_failed_at REAL,
    last_error      TEXT,
    delivered_at    REAL,
    died_at         REAL,
    reason          TEXT
);

CREATE INDEX deliveries_pending ON deliveries (destination_id, delivery_id) WHERE status = 0;
CREATE INDEX deliveries_dead ON deliveries (died_at, delivery_id) WHERE status = 2;

CREATE TABLE applied_versions (
    destination_id TEXT    NOT NULL,
    ordering_key   TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    PRIMARY KEY (destination_id, ordering_key)
) WITHOUT ROWID;

CREATE TABLE rejects (
    reject_id   INTEGER PRIMARY KEY,
    channel_id  TEXT NOT NULL,
    received_at REAL NOT NULL,
    peer        TEXT NOT NULL,
    reason      TEXT NOT NULL,
    raw         BLOB NOT NULL
);

CREATE INDEX rejects_channel ON rejects (channel_id, reject_id);

CREATE TABLE audit (
    entry_id INTEGER PRIMARY KEY,
    at       REAL NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    subject  TEXT NOT NULL,
    detail   TEXT NOT NULL
);

CREATE INDEX audit_subject ON audit (subject, entry_id);

CREATE TABLE channel_counters (
    channel_id       TEXT    NOT NULL PRIMARY KEY,
    received         INTEGER NOT NULL,
    duplicates       INTEGER NOT NULL,
    rejected         INTEGER NOT NULL,
    last_received_at REAL
) WITHOUT ROWID;

CREATE TABLE outbox_counters (
    destination_id    TEXT    NOT NULL,
    channel_id        TEXT    NOT NULL,
    delivered         INTEGER NOT NULL,
    pending           INTEGER NOT NULL,
    dead              INTEGER NOT NULL,
    superseded        INTEGER NOT NULL,
    last_delivered_at REAL,
    PRIMARY KEY (destination_id, channel_id)
) WITHOUT ROWID;
