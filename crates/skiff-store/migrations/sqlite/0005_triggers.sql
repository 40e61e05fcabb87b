-- Triggers: named cron schedules and broker subscriptions that start calls of a function.
CREATE TABLE triggers (
    name       TEXT PRIMARY KEY,
    function   TEXT NOT NULL,
    kind       TEXT NOT NULL,     -- `cron` or `nats`
    spec       TEXT NOT NULL,     -- the validated TriggerSpec as JSON
    generation TEXT NOT NULL,     -- a new uuid at each create or replace; seeds tick call ids
    created_at INTEGER NOT NULL,
    last_tick  INTEGER            -- cron: the last tick handled (fired or skipped), unix ms
);

CREATE INDEX triggers_function ON triggers (function);
