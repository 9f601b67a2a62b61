-- Change signals between processes are PostgreSQL's (LISTEN/NOTIFY, see the
-- postgres migration of the same number); SQLite has one process per file.
-- Kept so both backends have the same migration numbers.
SELECT 1;
