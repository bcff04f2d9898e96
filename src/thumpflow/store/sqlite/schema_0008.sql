-- thumpflow SQLite store, schema version 8: search, timelines and pauses for the HTTP API.
--
-- Searches list newest first by (time, id) and page by keyset, so each filter
-- has an index whose columns are (equality column, time) and whose implicit
-- last column is the rowid (event_seq / delivery_id): a page is one index
-- range read, never a sort, however many rows the store holds.
--   events_received          events by time (no other filter, or a time range only)
--   events_entity            by patient identifier (entity_id, the ordering key's id)
--   events_control           by control id: the pipeline keeps MSH-10 in correlation_id
--   events_type, events_channel
--   events_causation         derived events of an event (timeline)
--   deliveries_created       deliveries by time
--   deliveries_destination, deliveries_channel
--   deliveries_{pending,dead,superseded}_time
--                            partial: by status, for the statuses few deliveries hold
--                            (delivered ones are found through the indexes above);
--                            partial, so the hot path pays for them only while a
--                            delivery is in that status, and no index on status
--                            competes with deliveries_pending / deliveries_dead
--   (deliveries_event, from schema 5, finds the deliveries of an event for the timeline)
--
--   attempts    one row per send attempt's recorded outcome (failed, dead; stores
--               written before 2026-11-22 also hold one per delivered outcome, which
--               the writer no longer writes: the timeline takes the success from the
--               delivery row and its `delivered` audit entry), written with the
--               outcome in the same transaction. `detail` is the receiver's text,
--               sealed like deliveries.last_error when the store encrypts.
--   pauses      destinations and channels an operator paused; a row exists
--               while paused, so a restart resumes the paused state.

CREATE INDEX events_received ON events (received_at);
CREATE INDEX events_entity ON events (entity_id, received_at);
CREATE INDEX events_control ON events (correlation_id, received_at);
CREATE INDEX events_type ON events (event_type, received_at);
CREATE INDEX events_channel ON events (channel_id, received_at);
CREATE INDEX events_causation ON events (causation_id) WHERE causation_id IS NOT NULL;

CREATE INDEX deliveries_created ON deliveries (created_at);
CREATE INDEX deliveries_destination ON deliveries (destination_id, created_at);
CREATE INDEX deliveries_channel ON deliveries (channel_id, created_at);
CREATE INDEX deliveries_pending_time ON deliveries (created_at) WHERE status = 0;
CREATE INDEX deliveries_dead_time ON deliveries (created_at) WHERE status = 2;
CREATE INDEX deliveries_superseded_time ON deliveries (created_at) WHERE status = 3;

CREATE TABLE attempts (
    attempt_id  INTEGER PRIMARY KEY,
    delivery_id INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    at          REAL    NOT NULL,
    outcome     TEXT    NOT NULL,
    detail      TEXT
);

CREATE INDEX attempts_delivery ON attempts (delivery_id, attempt_id);

CREATE TABLE pauses (
    kind      TEXT NOT NULL,
    target_id TEXT NOT NULL,
    paused_at REAL NOT NULL,
    actor     TEXT NOT NULL,
    reason    TEXT NOT NULL,
    PRIMARY KEY (kind, target_id)
) WITHOUT ROWID;
