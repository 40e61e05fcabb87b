-- How long a call waited for a slot and an instance before it ran, in milliseconds.
ALTER TABLE calls ADD COLUMN wait_ms INTEGER;
