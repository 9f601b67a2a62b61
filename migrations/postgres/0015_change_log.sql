-- The change log is SQLite's (see the sqlite migration of the same number);
-- PostgreSQL tells other processes of changes with LISTEN/NOTIFY (0011).
-- Kept so both backends have the same migration numbers.
SELECT 1;
