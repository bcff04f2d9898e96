-- thumpflow SQLite store, schema version 2: scheduled runs ("thump").
--
--   runs                 one row per run; status is the RunStatus text.
--   runs_running         the no-overlap guard: at most one `running` run per job.
--   runs_job             runs(job) newest first.
--   runs_scheduled       last_scheduled(job).
--   watermarks           where the job's next run starts; advanced only by a
--                        succeeded or partial run that is not a rerun.
--   row_rejects          records that failed validation, with rule and remedy;
--                        indexed for row_rejects(job) and row_rejects(run).
--   delivery_ledger      (destination, business key) -> content hash, latest wins.
-- Manifests are JSON arrays of {name, record_count, sha256, created_at, source,
-- window_start, window_end}.

CREATE TABLE runs (
    run_id            INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id            TEXT    NOT NULL,
    trigger           TEXT    NOT NULL,
    window_start      TEXT,
    window_end        TEXT,
    status            TEXT    NOT NULL,
    scheduled_for     REAL,
    started_at        REAL    NOT NULL,
    finished_at       REAL,
    read_count        INTEGER NOT NULL DEFAULT 0,
    valid_count       INTEGER NOT NULL DEFAULT 0,
    rejected_count    INTEGER NOT NULL DEFAULT 0,
    written_count     INTEGER NOT NULL DEFAULT 0,
    skipped_count     INTEGER NOT NULL DEFAULT 0,
    manifests_checked TEXT    NOT NULL DEFAULT '[]',
    manifests_written TEXT    NOT NULL DEFAULT '[]',
    error             TEXT,
    next_watermark    TEXT
);

CREATE UNIQUE INDEX runs_running ON runs (job_id) WHERE status = 'running';
CREATE INDEX runs_job ON runs (job_id, run_id);
CREATE INDEX runs_scheduled ON runs (job_id, scheduled_for) WHERE scheduled_for IS NOT NULL;

CREATE TABLE watermarks (
    job_id     TEXT    NOT NULL PRIMARY KEY,
    watermark  TEXT    NOT NULL,
    run_id     INTEGER NOT NULL,
    updated_at REAL    NOT NULL
) WITHOUT ROWID;

CREATE TABLE row_rejects (
    reject_id   INTEGER PRIMARY KEY,
    job_id      TEXT    NOT NULL,
    run_id      INTEGER NOT NULL,
    origin      TEXT    NOT NULL,
    record      TEXT    NOT NULL,
    rule        TEXT    NOT NULL,
    remedy      TEXT    NOT NULL,
    at          REAL    NOT NULL,
    replayed_at REAL
);

CREATE INDEX row_rejects_job ON row_rejects (job_id, reject_id);
CREATE INDEX row_rejects_run ON row_rejects (run_id, reject_id);

CREATE TABLE delivery_ledger (
    destination_id TEXT NOT NULL,
    business_key   TEXT NOT NULL,
    content_hash   TEXT NOT NULL,
    at             REAL NOT NULL,
    PRIMARY KEY (destination_id, business_key)
) WITHOUT ROWID;
