-- thumpflow PostgreSQL store, schema version 4: what a run found beyond its counts.
--
--   runs.findings  a JSON object of named counts and names (a census
--                  reconciliation: snapshot, its time, beds compared, drifted,
--                  repaired, and the drifted beds' names); never patient data.
--                  NULL for a run that found nothing of the kind.
ALTER TABLE runs ADD COLUMN findings text;
