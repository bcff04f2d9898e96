-- thumpflow SQLite store, schema version 5: security (audit chain, encryption keys, retention).
--
--   audit.prev_hash, audit.hash
--       the hash chain (hex SHA-256, see thumpflow.core.audit). Entries written
--       before this version get theirs when the store is next opened read-write.
--   audit_no_update, audit_no_delete
--       the audit trail is append-only: no DELETE, and no UPDATE of an entry
--       that is chained (the one-time chaining of older entries sets a hash
--       where there was none). Defence in depth: whoever edits the file
--       directly can drop these, and the chain is what shows it.
--   cipher_keys
--       one row per payload encryption key id the store has used, with a
--       known value sealed under that key (`check`), so a wrong key is
--       refused at start-up and a store holding encrypted rows is never read
--       without its keys. A key's row is removed by `store rekey` once no
--       value is sealed under it any more.
--   deliveries_event
--       the deliveries of an event, for the retention purge.

ALTER TABLE audit ADD COLUMN prev_hash TEXT;
ALTER TABLE audit ADD COLUMN hash TEXT;

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit WHEN OLD.hash IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;

CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;

CREATE TABLE cipher_keys (
    key_id   TEXT NOT NULL PRIMARY KEY,
    check_value BLOB NOT NULL,
    added_at REAL NOT NULL
) WITHOUT ROWID;

CREATE INDEX deliveries_event ON deliveries (event_seq);
