-- thumpflow PostgreSQL store, schema version 3: nodes, leases and signals.
--
--   nodes   one row per node id: the incarnation now using it, where it runs,
--           and its heartbeat (expires_at on the database's clock).
--   leases  one row per lease name (a destination's partition, a singleton
--           duty): owner, epoch (raised at every change of owner), expires_at
--           on the database's clock; a released lease expires at once.
--   signals one row per named signal, its generation raised by the write it
--           signals (`replay:<destination>`); nodes poll them.
--   runs.node  the incarnation of the node running the run (NULL: started
--           before nodes); recovery closes only runs whose node is gone.
CREATE TABLE nodes (
    node_id      text             PRIMARY KEY,
    incarnation  text             NOT NULL,
    host         text             NOT NULL,
    pid          integer          NOT NULL,
    api          text             NOT NULL,
    started_at   double precision NOT NULL,
    heartbeat_at double precision NOT NULL,
    expires_at   double precision NOT NULL
);
CREATE TABLE leases (
    name        text             PRIMARY KEY,
    owner       text             NOT NULL,
    epoch       bigint           NOT NULL,
    acquired_at double precision NOT NULL,
    expires_at  double precision NOT NULL
);
ALTER TABLE runs ADD COLUMN node text;
CREATE TABLE signals (
    name       text   PRIMARY KEY,
    generation bigint NOT NULL
);
