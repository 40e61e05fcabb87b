-- How long a call waited for a container or instance started for it (its cold start), in
-- milliseconds, apart from its wait for a slot (wait_ms).
ALTER TABLE calls ADD COLUMN start_ms INTEGER;
