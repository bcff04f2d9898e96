-- thumpflow SQLite store, schema version 12: reused control ids.
--
--   idempotency.digest  the digest of the admitted message without its send
--                       time (`Admission.content_digest`); NULL for keys
--                       committed before, and for keys that are not MSH-10
--                       (HTTP Idempotency-Key, FHIR). A committed key with
--                       another digest is a reused control id: a new event
--                       under `<key>#<digest>`, never a duplicate.
ALTER TABLE idempotency ADD COLUMN digest TEXT;
