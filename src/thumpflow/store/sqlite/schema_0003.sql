-- thumpflow SQLite store, schema version 3: flow deliveries feed the delivery ledger.
--
--   deliveries.business_key, deliveries.content_hash
--       set (both or neither) for a delivery of a channel with a `ledger`;
--       when the delivery is recorded delivered, (destination_id,
--       business_key) -> content_hash is upserted into delivery_ledger in the
--       same transaction. NULL for every other delivery, and for deliveries
--       admitted before this version.

ALTER TABLE deliveries ADD COLUMN business_key TEXT;
ALTER TABLE deliveries ADD COLUMN content_hash TEXT;
