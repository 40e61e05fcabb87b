-- skiff's state on PostgreSQL: the schema of the SQLite migrations 0001 to 0006, in one.
-- Versions line up with migrations/sqlite: after migration N both backends hold the same
-- tables and columns, so a change is one file of the same number in each directory.
-- Timestamps are unix milliseconds (BIGINT); enums are stored by their `as_str()` names;
-- ids are TEXT (calls: UUIDv7, hyphenated lowercase, so they sort by time); JSON is TEXT
-- (it is read and written whole, and TEXT keeps both backends' rows alike).

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE functions (
    name         TEXT PRIMARY KEY,
    config       TEXT NOT NULL,      -- the FunctionConfig as JSON
    image_digest TEXT NOT NULL,
    version      BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

-- Call records outlive their function: no foreign key to `functions`.
CREATE TABLE calls (
    id            TEXT PRIMARY KEY,
    function      TEXT NOT NULL,
    trigger       TEXT NOT NULL,
    status        TEXT NOT NULL,
    attempt       BIGINT NOT NULL,
    received_at   BIGINT NOT NULL,
    started_at    BIGINT,
    finished_at   BIGINT,
    cold          BOOLEAN,
    instance      TEXT,
    exit_code     BIGINT,
    error_type    TEXT,
    error_message TEXT,
    request_size  BIGINT NOT NULL,
    response_size BIGINT,
    duration_ms   BIGINT,
    wait_ms       BIGINT,            -- time waited for a slot and an instance
    not_before    BIGINT,            -- a queued call is not claimed before this time
    caller        TEXT,              -- the calling function (function API)
    parent        TEXT,              -- the call its caller was serving
    depth         BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX calls_function_id ON calls (function, id);
CREATE INDEX calls_status_id ON calls (status, id);
CREATE INDEX calls_queue ON calls (status, not_before, id);

CREATE TABLE call_logs (
    call_id TEXT PRIMARY KEY REFERENCES calls (id) ON DELETE CASCADE,
    logs    BYTEA NOT NULL
);

-- The durable queue of async calls: what each queued call carries, when it expires, where
-- its result is sent. callback_state: NULL (no callback), 'pending', 'sent' or 'failed'.
CREATE TABLE call_payloads (
    call_id        TEXT PRIMARY KEY REFERENCES calls (id) ON DELETE CASCADE,
    method         TEXT NOT NULL,
    path           TEXT NOT NULL,
    query          TEXT NOT NULL,
    headers        TEXT NOT NULL,
    body           BYTEA NOT NULL,
    expires_at     BIGINT,
    callback_url   TEXT,
    callback_state TEXT
);

CREATE INDEX call_payloads_callbacks ON call_payloads (callback_state)
    WHERE callback_state = 'pending';

CREATE TABLE call_results (
    call_id      TEXT PRIMARY KEY REFERENCES calls (id) ON DELETE CASCADE,
    status_code  BIGINT NOT NULL,
    content_type TEXT,
    size         BIGINT NOT NULL,
    body         BYTEA NOT NULL
);

-- Triggers: named cron schedules and broker subscriptions that start calls of a function.
CREATE TABLE triggers (
    name       TEXT PRIMARY KEY,
    function   TEXT NOT NULL,
    kind       TEXT NOT NULL,     -- `cron` or `nats`
    spec       TEXT NOT NULL,     -- the validated TriggerSpec as JSON
    generation TEXT NOT NULL,     -- a new uuid at each create or replace; seeds tick call ids
    created_at BIGINT NOT NULL,
    last_tick  BIGINT             -- cron: the last tick handled (fired or skipped), unix ms
);

CREATE INDEX triggers_function ON triggers (function);
