-- thumpflow SQLite store, schema version 16: a node says when it has started.
--
--   nodes.ready  1 once the incarnation's heartbeat says its outboxes have
--                started; 0 from its join until then. Nodes share partitions
--                among the ready ones only, so a node still starting (or stuck
--                starting) does not keep partitions free for itself.
ALTER TABLE nodes ADD COLUMN ready INTEGER NOT NULL DEFAULT 0;
