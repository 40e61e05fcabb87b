-- Async calls: when each expires, where its result is sent, and what it answered.
ALTER TABLE call_payloads ADD COLUMN expires_at INTEGER;
ALTER TABLE call_payloads ADD COLUMN callback_url TEXT;
-- NULL: no callback; 'pending': to be sent once the call is final; 'sent' or 'failed'.
ALTER TABLE call_payloads ADD COLUMN callback_state TEXT;
CREATE INDEX call_payloads_callbacks ON call_payloads (callback_state)
    WHERE callback_state = 'pending';

CREATE TABLE call_results (
    call_id TEXT PRIMARY KEY REFERENCES calls (id) ON DELETE CASCADE,
    status_code INTEGER NOT NULL,
    content_type TEXT,
    size INTEGER NOT NULL,
    body BLOB NOT NULL
);
