-- What the instances of `http` and `lambda` functions write, line by line, kept bounded
-- per instance and in all (see `Store::write_instance_logs`).
CREATE TABLE instance_logs (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    function TEXT NOT NULL,
    instance TEXT NOT NULL,
    at       INTEGER NOT NULL,   -- unix milliseconds, when skiff read the line
    stream   TEXT NOT NULL,      -- `stdout` or `stderr`
    line     TEXT NOT NULL
);

CREATE INDEX instance_logs_instance ON instance_logs (instance, seq);
-- The dashboard's stats read recent calls by time.
CREATE INDEX calls_function_received ON calls (function, received_at);
