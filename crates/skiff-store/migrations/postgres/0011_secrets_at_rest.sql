-- Secrets at rest (see keys.rs and secrets.rs): a function's secrets are sealed, out of its
-- configuration's JSON, beside the id of the key that sealed them; access keys of the
-- Lambda API, their secret sealed the same way; and the keys each daemon holds, so that the
-- store is only moved to a key every daemon has.
ALTER TABLE functions ADD COLUMN secrets TEXT;
ALTER TABLE functions ADD COLUMN secrets_key TEXT;

CREATE TABLE access_keys (
    id          TEXT PRIMARY KEY,    -- the AWS access key id
    namespace   TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    secret      TEXT NOT NULL,       -- the secret access key, sealed
    secret_key  TEXT NOT NULL,       -- the id of the key that sealed it
    created_at  BIGINT NOT NULL
);

CREATE TABLE daemon_keys (
    daemon  TEXT NOT NULL,
    key_id  TEXT NOT NULL,
    seen_at BIGINT NOT NULL,
    PRIMARY KEY (daemon, key_id)
);
