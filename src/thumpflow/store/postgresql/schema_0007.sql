-- thumpflow PostgreSQL store, schema version 7: message payloads compressed with lz4.
--
--   events.body, rejects.raw, row_rejects.record  compressed with lz4 instead of
--                   the server's default (pglz) when PostgreSQL stores them
--                   compressed: a message of about 2 KB makes its row pass
--                   the threshold where the server tries, and pglz costs the
--                   server more CPU per admission than lz4 (docs/benchmarks.md).
--                   Values already stored keep their compression. A server
--                   built without lz4 keeps its default: the migration does
--                   not fail for it.
DO $$
BEGIN
    ALTER TABLE events ALTER COLUMN body SET COMPRESSION lz4;
    ALTER TABLE rejects ALTER COLUMN raw SET COMPRESSION lz4;
    ALTER TABLE row_rejects ALTER COLUMN record SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    NULL;
END $$;
