-- thumpflow SQLite store, schema version 4: API tokens.
--
--   api_tokens        one row per issued token; only the SHA-256 of the token is
--                     kept (`token_hash`), never the token. A revoked token keeps
--                     its row (revoked_at set) so the audit trail can name it.
--   api_tokens_hash   token_by_hash() on every authenticated request.

CREATE TABLE api_tokens (
    token_id   INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    role       TEXT    NOT NULL,
    token_hash TEXT    NOT NULL UNIQUE,
    created_at REAL    NOT NULL,
    created_by TEXT    NOT NULL,
    revoked_at REAL
);
