-- Admins are marked in the database (`cairn user create NAME --admin`), never made by registering a name.
ALTER TABLE users ADD COLUMN is_admin BOOLEAN NOT NULL DEFAULT FALSE;
