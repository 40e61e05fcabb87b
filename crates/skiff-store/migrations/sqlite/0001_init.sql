-- skiff's state: the daemon's identity, deployed functions, call records and call logs.
-- Timestamps are unix milliseconds; enums are stored by their `as_str()` names.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE functions (
    name         TEXT PRIMARY KEY,
    config       TEXT NOT NULL,      -- the FunctionConfig as JSON
    image_digest TEXT NOT NULL,
    version      INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

-- Call records outlive their function: no foreign key to `functions`.
CREATE TABLE calls (
    id            TEXT PRIMARY KEY,  -- UUIDv7, hyphenated lowercase: sorts by time
    function      TEXT NOT NULL,
    trigger       TEXT NOT NULL,
    status        TEXT NOT NULL,
    attempt       INTEGER NOT NULL,
    received_at   INTEGER NOT NULL,
    started_at    INTEGER,
    finished_at   INTEGER,
    cold          INTEGER,
    instance      TEXT,
    exit_code     INTEGER,
    error_type    TEXT,
    error_message TEXT,
    request_size  INTEGER NOT NULL,
    response_size INTEGER,
    duration_ms   INTEGER
);

CREATE INDEX calls_function_id ON calls (function, id);
CREATE INDEX calls_status_id ON calls (status, id);

CREATE TABLE call_logs (
    call_id TEXT PRIMARY KEY REFERENCES calls (id) ON DELETE CASCADE,
    logs    BLOB NOT NULL
);
