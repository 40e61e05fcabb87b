-- Who may do what: API tokens and invoke keys (stored as SHA-256 hashes of their secrets,
-- never the secrets), the audit log of management actions, and the namespaces' quotas.
CREATE TABLE credentials (
    id         TEXT PRIMARY KEY,    -- `tok_...` or `key_...`, shown, not secret
    kind       TEXT NOT NULL,       -- `token` (API token) or `key` (a function's invoke key)
    name       TEXT NOT NULL,       -- the owner's label
    hash       TEXT NOT NULL UNIQUE,-- hex SHA-256 of the secret
    scopes     TEXT NOT NULL,       -- comma-separated: admin, deploy, invoke, read
    namespaces TEXT NOT NULL,       -- comma-separated namespace names, or `*`
    function   TEXT,                -- keys: the function (namespace-qualified) they invoke
    created_at BIGINT NOT NULL,     -- unix milliseconds
    expires_at BIGINT,
    revoked_at BIGINT
);

CREATE INDEX credentials_function ON credentials (function);

CREATE TABLE audit_log (
    id        TEXT PRIMARY KEY,     -- UUIDv7: sorts by time
    at        BIGINT NOT NULL,      -- unix milliseconds
    token_id  TEXT,                 -- the credential used, when one was valid
    actor     TEXT NOT NULL,        -- the credential's name, or `anonymous`
    namespace TEXT NOT NULL,
    action    TEXT NOT NULL,        -- `deploy`, `delete function`, `create token`, ...
    target    TEXT NOT NULL,        -- what it acted on (`hello`, a token id, ...)
    method    TEXT NOT NULL,
    path      TEXT NOT NULL,
    status    BIGINT NOT NULL       -- the HTTP status answered
);

CREATE INDEX audit_log_at ON audit_log (at);

CREATE TABLE namespace_quotas (
    namespace            TEXT PRIMARY KEY,
    max_functions        BIGINT,    -- NULL: no limit
    max_concurrent_calls BIGINT,
    max_memory           BIGINT     -- bytes of running instances and calls
);
