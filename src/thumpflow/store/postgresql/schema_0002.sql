-- thumpflow PostgreSQL store, schema version 2: the operating mode in force.
--
--   operating_mode  one row (scope 'engine') once a mode was recorded: normal,
--                   surge or diversion, since when, declared by an operator's
--                   act or decided by the rules (`origin`), by whom, why, and
--                   the rule that holds; kept so a restart resumes the mode.
--                   Every change is audited as `mode.changed`.
CREATE TABLE operating_mode (
    scope   text             PRIMARY KEY,
    mode    text             NOT NULL,
    since   double precision NOT NULL,
    origin  text             NOT NULL,
    actor   text             NOT NULL,
    reason  text             NOT NULL,
    rule    text
);
