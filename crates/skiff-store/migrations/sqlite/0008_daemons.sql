-- The daemons that use this database, under the ids their containers are labelled with.
-- `home` is the host and data directory an id belongs to: a daemon restarted there gets
-- its id back. `heartbeat_at` (unix ms) is when it last said it was alive; `state` is
-- `alive`, or `recovering` while another daemon takes over after its lease ran out.
CREATE TABLE daemons (
    id           TEXT PRIMARY KEY,
    home         TEXT NOT NULL UNIQUE,
    address      TEXT,
    state        TEXT NOT NULL DEFAULT 'alive',
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);

-- The daemon running each call (claimed, or started there): whose calls to re-queue or
-- mark interrupted when it is gone.
ALTER TABLE calls ADD COLUMN daemon TEXT;
CREATE INDEX calls_daemon_status ON calls (daemon, status);
