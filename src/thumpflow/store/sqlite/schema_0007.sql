-- thumpflow SQLite store, schema version 7: versions in the delivery ledger.
--
--   delivery_ledger.version, deliveries.ledger_version
--       the entity version of the record delivered (the value of the partner
--       job's `version_field`, as an integer: see thumpflow.core.records
--       .version_number), so reconciliation can tell a stale destination from
--       a differing one. NULL when the job declares no version field, and for
--       entries written before this version.
--
-- The primary key (destination_id, business_key) of the WITHOUT ROWID ledger
-- already orders one destination's keys (BINARY collation: code point order),
-- which is how a reconcile run pages through every key to find extras.

ALTER TABLE delivery_ledger ADD COLUMN version INTEGER;
ALTER TABLE deliveries ADD COLUMN ledger_version INTEGER;
