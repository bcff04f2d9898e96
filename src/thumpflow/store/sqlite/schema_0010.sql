-- thumpflow SQLite store, schema version 10: FHIR Subscriptions tracking state.
--
--   subscription_state  one row per (channel, subscription): the highest event
--                       number seen and the open gaps (a JSON array of event
--                       numbers, bounded as the receiver bounds them), so gap
--                       detection survives an engine restart.

CREATE TABLE subscription_state (
    channel_id        TEXT    NOT NULL,
    subscription_id   TEXT    NOT NULL,
    last_event_number INTEGER,
    missed            TEXT    NOT NULL,
    updated_at        REAL    NOT NULL,
    PRIMARY KEY (channel_id, subscription_id)
) WITHOUT ROWID;
