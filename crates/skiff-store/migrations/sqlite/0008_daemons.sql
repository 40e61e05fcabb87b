-- The daemons that use this database, under the ids their containers are labelled with.
-- `home` is the host and data directory an id belongs to: a daemon restarted there gets
-- its id back. `heartbeat_at` (unix ms) is when it last said it was alive.
CREATE TABLE daemons (
    id           TEXT PRIMARY KEY,
    home         TEXT NOT NULL UNIQUE,
    address      TEXT,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);
