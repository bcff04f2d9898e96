-- thumpflow SQLite store, schema version 11: patient search by the id alone.
--
--   events_patient   replaces events_entity (schema 8). It indexes the entity id
--                    without its assigning authority (the text after the first
--                    `|`; the whole id when there is none), so a search for
--                    `MRN123` finds `GEN|MRN123` and `MRN123` alike, and a search
--                    for `GEN|MRN123` narrows the same index range to that
--                    authority. One index either way: no extra cost per event.

DROP INDEX events_entity;
CREATE INDEX events_patient
    ON events (substr(entity_id, instr(entity_id, '|') + 1), received_at);
