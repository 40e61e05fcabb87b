-- Calls made by functions through the function API: the calling function, the call it
-- was serving when it made this one, and how many function-to-function hops led here.
ALTER TABLE calls ADD COLUMN caller TEXT;
ALTER TABLE calls ADD COLUMN parent TEXT;
ALTER TABLE calls ADD COLUMN depth INTEGER NOT NULL DEFAULT 0;
