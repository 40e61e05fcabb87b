-- Claims read the queue one function at a time (a skip scan over function names, then each
-- function's oldest due calls), never ranking the whole queue; the old index served only
-- that ranking.
DROP INDEX calls_queue;
CREATE INDEX calls_claim ON calls (status, function, id);
