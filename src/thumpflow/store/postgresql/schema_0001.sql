-- thumpflow PostgreSQL store, schema version 1: everything SQLite's schemas 1-11 hold.
--
-- Same tables and column names as the SQLite store (so the row mapping in
-- thumpflow.store.rows serves both), with PostgreSQL types: times are
-- double precision (Unix seconds), payloads bytea. Columns that may hold a
-- sealed value (deliveries.last_error / reason, row_rejects.record,
-- attempts.detail) are bytea whether sealed or not (UTF-8 when plain).
--
-- Event and delivery ids are handed out from the last ones used, kept in the
-- audit_head row, which every write transaction locks first and keeps until
-- COMMIT: ids commit in the order they were handed out, across nodes too, so
-- a reader paging pending deliveries by id never skips one committed later
-- (and taking them costs no statement of its own).
--
--   key_sequences    per (destination, ordering key): the last delivery
--                    sequence handed out, from an upsert RETURNING seq in the
--                    admitting transaction; deliveries.key_seq orders one
--                    key's deliveries by commit, whatever node admitted them.
--   audit_head       one row: the newest chained audit entry (id, hash) and the
--                    last event_seq and delivery_id handed out. Its row lock
--                    serialises appends to the one chain and the ids.
-- Key columns compared by code point (ledger paging) use COLLATE "C".

CREATE TABLE events (
    event_seq       bigint           PRIMARY KEY,
    event_id        text             NOT NULL UNIQUE,
    idempotency_key text             NOT NULL,
    source_system   text             NOT NULL,
    channel_id      text             NOT NULL,
    event_type      text             NOT NULL,
    entity_type     text             NOT NULL,
    entity_id       text             NOT NULL,
    occurred_at     double precision NOT NULL,
    received_at     double precision NOT NULL,
    content_type    text             NOT NULL,
    sequence        bigint,
    lane            integer          NOT NULL,
    location        text,
    actor           text,
    correlation_id  text,
    causation_id    text,
    body            bytea            NOT NULL
);

CREATE INDEX events_received ON events (received_at, event_seq);
CREATE INDEX events_patient
    ON events ((substr(entity_id, strpos(entity_id, '|') + 1)), received_at, event_seq);
CREATE INDEX events_control ON events (correlation_id, received_at, event_seq);
CREATE INDEX events_type ON events (event_type, received_at, event_seq);
CREATE INDEX events_channel ON events (channel_id, received_at, event_seq);
CREATE INDEX events_causation ON events (causation_id) WHERE causation_id IS NOT NULL;

-- idempotency.digest: as SQLite's schema 12 (a reused control id is a new event).
CREATE TABLE idempotency (
    key         text             NOT NULL PRIMARY KEY,
    event_id    text             NOT NULL,
    ack_code    text             NOT NULL,
    received_at double precision NOT NULL,
    digest      text
);

-- status: 0 pending, 1 delivered, 2 dead, 3 superseded.
CREATE TABLE deliveries (
    delivery_id     bigint           PRIMARY KEY,
    event_seq       bigint           NOT NULL,
    destination_id  text             NOT NULL,
    channel_id      text             NOT NULL,
    ordering_key    text             NOT NULL,
    key_seq         bigint           NOT NULL,
    lane            integer          NOT NULL,
    sequence        bigint,
    created_at      double precision NOT NULL,
    status          integer          NOT NULL,
    attempts        integer          NOT NULL,
    next_attempt_at double precision NOT NULL,
    first_failed_at double precision,
    last_error      bytea,
    delivered_at    double precision,
    died_at         double precision,
    reason          bytea,
    business_key    text,
    content_hash    text,
    ledger_version  bigint
);

CREATE INDEX deliveries_pending ON deliveries (destination_id, delivery_id) WHERE status = 0;
CREATE INDEX deliveries_dead ON deliveries (died_at, delivery_id) WHERE status = 2;
CREATE INDEX deliveries_event ON deliveries (event_seq);
CREATE INDEX deliveries_delivered
    ON deliveries (destination_id, delivered_at, created_at) WHERE status = 1;
CREATE INDEX deliveries_created ON deliveries (created_at, delivery_id);
CREATE INDEX deliveries_destination ON deliveries (destination_id, created_at, delivery_id);
CREATE INDEX deliveries_channel ON deliveries (channel_id, created_at, delivery_id);
CREATE INDEX deliveries_pending_time ON deliveries (created_at, delivery_id) WHERE status = 0;
CREATE INDEX deliveries_dead_time ON deliveries (created_at, delivery_id) WHERE status = 2;
CREATE INDEX deliveries_superseded_time
    ON deliveries (created_at, delivery_id) WHERE status = 3;

CREATE TABLE key_sequences (
    destination_id text   NOT NULL,
    ordering_key   text   NOT NULL,
    seq            bigint NOT NULL,
    PRIMARY KEY (destination_id, ordering_key)
);

CREATE TABLE applied_versions (
    destination_id text   NOT NULL,
    ordering_key   text   NOT NULL,
    version        bigint NOT NULL,
    PRIMARY KEY (destination_id, ordering_key)
);

CREATE TABLE rejects (
    reject_id   bigserial        PRIMARY KEY,
    channel_id  text             NOT NULL,
    received_at double precision NOT NULL,
    peer        text             NOT NULL,
    reason      text             NOT NULL,
    raw         bytea            NOT NULL
);
CREATE INDEX rejects_channel ON rejects (channel_id, reject_id);

CREATE TABLE audit (
    entry_id  bigint           PRIMARY KEY,
    at        double precision NOT NULL,
    actor     text             NOT NULL,
    action    text             NOT NULL,
    subject   text             NOT NULL,
    detail    text             NOT NULL,
    prev_hash text             NOT NULL,
    hash      text             NOT NULL
);
CREATE INDEX audit_subject ON audit (subject, entry_id);
CREATE INDEX audit_hash ON audit (hash);

CREATE TABLE audit_head (
    one         boolean PRIMARY KEY DEFAULT true CHECK (one),
    entry_id    bigint,
    hash        text,
    event_seq   bigint  NOT NULL DEFAULT 0,
    delivery_id bigint  NOT NULL DEFAULT 0
);
INSERT INTO audit_head (one) VALUES (true);

CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only';
END;
$$;
CREATE TRIGGER audit_no_update BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

CREATE TABLE channel_counters (
    channel_id       text    NOT NULL PRIMARY KEY,
    received         bigint  NOT NULL,
    duplicates       bigint  NOT NULL,
    rejected         bigint  NOT NULL,
    last_received_at double precision
);

CREATE TABLE outbox_counters (
    destination_id    text   NOT NULL,
    channel_id        text   NOT NULL,
    delivered         bigint NOT NULL,
    pending           bigint NOT NULL,
    dead              bigint NOT NULL,
    superseded        bigint NOT NULL,
    last_delivered_at double precision,
    PRIMARY KEY (destination_id, channel_id)
);

CREATE TABLE runs (
    run_id            bigserial        PRIMARY KEY,
    job_id            text             NOT NULL,
    trigger           text             NOT NULL,
    window_start      text,
    window_end        text,
    status            text             NOT NULL,
    scheduled_for     double precision,
    started_at        double precision NOT NULL,
    finished_at       double precision,
    read_count        bigint           NOT NULL DEFAULT 0,
    valid_count       bigint           NOT NULL DEFAULT 0,
    rejected_count    bigint           NOT NULL DEFAULT 0,
    written_count     bigint           NOT NULL DEFAULT 0,
    skipped_count     bigint           NOT NULL DEFAULT 0,
    manifests_checked text             NOT NULL DEFAULT '[]',
    manifests_written text             NOT NULL DEFAULT '[]',
    error             text,
    next_watermark    text
);
CREATE UNIQUE INDEX runs_running ON runs (job_id) WHERE status = 'running';
CREATE INDEX runs_job ON runs (job_id, run_id);
CREATE INDEX runs_scheduled ON runs (job_id, scheduled_for) WHERE scheduled_for IS NOT NULL;

CREATE TABLE watermarks (
    job_id     text             NOT NULL PRIMARY KEY,
    watermark  text             NOT NULL,
    run_id     bigint           NOT NULL,
    updated_at double precision NOT NULL
);

CREATE TABLE row_rejects (
    reject_id   bigserial        PRIMARY KEY,
    job_id      text             NOT NULL,
    run_id      bigint           NOT NULL,
    origin      text             NOT NULL,
    record      bytea            NOT NULL,
    rule        text             NOT NULL,
    remedy      text             NOT NULL,
    at          double precision NOT NULL,
    replayed_at double precision
);
CREATE INDEX row_rejects_job ON row_rejects (job_id, reject_id);
CREATE INDEX row_rejects_run ON row_rejects (run_id, reject_id);

CREATE TABLE delivery_ledger (
    destination_id text             NOT NULL,
    business_key   text COLLATE "C" NOT NULL,
    content_hash   text             NOT NULL,
    at             double precision NOT NULL,
    version        bigint,
    PRIMARY KEY (destination_id, business_key)
);

CREATE TABLE api_tokens (
    token_id   bigserial        PRIMARY KEY,
    name       text             NOT NULL,
    role       text             NOT NULL,
    token_hash text             NOT NULL UNIQUE,
    created_at double precision NOT NULL,
    created_by text             NOT NULL,
    revoked_at double precision
);

CREATE TABLE cipher_keys (
    key_id      text             NOT NULL PRIMARY KEY,
    check_value bytea            NOT NULL,
    added_at    double precision NOT NULL
);

CREATE TABLE attempts (
    attempt_id  bigserial        PRIMARY KEY,
    delivery_id bigint           NOT NULL,
    attempt     integer          NOT NULL,
    at          double precision NOT NULL,
    outcome     text             NOT NULL,
    detail      bytea
);
CREATE INDEX attempts_delivery ON attempts (delivery_id, attempt_id);

CREATE TABLE pauses (
    kind      text             NOT NULL,
    target_id text             NOT NULL,
    paused_at double precision NOT NULL,
    actor     text             NOT NULL,
    reason    text             NOT NULL,
    PRIMARY KEY (kind, target_id)
);

CREATE TABLE alerts (
    alert_id        bigserial        PRIMARY KEY,
    kind            text             NOT NULL,
    subject         text             NOT NULL,
    severity        text             NOT NULL,
    message         text             NOT NULL,
    raised_at       double precision NOT NULL,
    cleared_at      double precision,
    acknowledged_by text,
    acknowledged_at double precision,
    ack_reason      text
);
CREATE UNIQUE INDEX alerts_active ON alerts (kind, subject) WHERE cleared_at IS NULL;
CREATE INDEX alerts_recent ON alerts (raised_at);

CREATE TABLE subscription_state (
    channel_id        text             NOT NULL,
    subscription_id   text             NOT NULL,
    last_event_number bigint,
    missed            text             NOT NULL,
    updated_at        double precision NOT NULL,
    PRIMARY KEY (channel_id, subscription_id)
);
