-- thumpflow SQLite store, schema version 13: the operating mode in force.
--
--   operating_mode  one row (scope 'engine') once a mode was recorded: normal,
--                   surge or diversion, since when, declared by an operator's
--                   act or decided by the rules (`origin`), by whom, why, and
--                   the rule that holds; kept so a restart resumes the mode.
--                   Every change is audited as `mode.changed`.
CREATE TABLE operating_mode (
    scope   TEXT PRIMARY KEY,
    mode    TEXT NOT NULL,
    since   REAL NOT NULL,
    origin  TEXT NOT NULL,
    actor   TEXT NOT NULL,
    reason  TEXT NOT NULL,
    rule    TEXT
);
