-- thumpflow SQLite store, schema version 6: recent deliveries for the dashboard.
--
--   deliveries_delivered   delivery_sample(destination, since): deliveries delivered
--                          since a time, newest first, with their lag. The index
--                          covers the query (status is a column too, since SQLite
--                          before 3.45 does not count the partial index's WHERE
--                          term as covered), so no table row is read.
-- Dead letters of a window use deliveries_dead (died_at) from version 1.

CREATE INDEX deliveries_delivered
    ON deliveries (destination_id, status, delivered_at, created_at) WHERE status = 1;
