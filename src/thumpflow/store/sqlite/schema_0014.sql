-- thumpflow SQLite store, schema version 14: nodes, leases and signals (the cluster
-- contract; an embedded store has one node, which holds every lease).
--
--   nodes   one row per node id: the incarnation now using it, where it runs,
--           and its heartbeat (expires_at on the store's clock).
--   leases  one row per lease name: owner, epoch (raised at every change of
--           owner), expires_at; a released lease expires at once.
--   signals one row per named signal, its generation raised by the write it
--           signals (`replay:<destination>`: a replay returned deliveries of
--           that destination to pending); nodes poll them.
--   runs.node  the incarnation of the node running the run (NULL: before
--           nodes, or an embedded store); recovery closes only runs whose
--           node is no longer alive.
CREATE TABLE nodes (
    node_id      TEXT PRIMARY KEY,
    incarnation  TEXT NOT NULL,
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    api          TEXT NOT NULL,
    started_at   REAL NOT NULL,
    heartbeat_at REAL NOT NULL,
    expires_at   REAL NOT NULL
);
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    epoch       INTEGER NOT NULL,
    acquired_at REAL NOT NULL,
    expires_at  REAL NOT NULL
);
ALTER TABLE runs ADD COLUMN node TEXT;
CREATE TABLE signals (
    name       TEXT PRIMARY KEY,
    generation INTEGER NOT NULL
);
