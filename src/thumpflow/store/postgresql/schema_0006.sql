-- thumpflow PostgreSQL store, schema version 6: no index on audit.hash.
--
--   audit_hash  dropped. It served one lookup, `verify_audit` naming the entry
--               a broken link points to, which runs only once a chain is found
--               broken and then reads the table in order anyway (the SQLite
--               store never had it). Every admission paid for it: two entries
--               a message, each a random insert of a 64-character key.
DROP INDEX audit_hash;
