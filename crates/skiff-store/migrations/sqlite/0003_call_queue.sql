-- The durable queue of async calls: what each queued call carries, and when it may run.
CREATE TABLE call_payloads (
    call_id TEXT PRIMARY KEY REFERENCES calls (id) ON DELETE CASCADE,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    query TEXT NOT NULL,
    headers TEXT NOT NULL,
    body BLOB NOT NULL
);
ALTER TABLE calls ADD COLUMN not_before INTEGER;
CREATE INDEX calls_queue ON calls (status, not_before, id);
