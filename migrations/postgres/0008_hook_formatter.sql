-- A hook may name a hook-formatter plugin that turns its events into the request sent.
ALTER TABLE hooks ADD COLUMN formatter TEXT;
