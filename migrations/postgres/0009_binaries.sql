-- Binary mirrors: one row per mirrored file, and per directory whose every
-- child was mirrored (a directory without a row is synced again).
CREATE TABLE binaries (
    category   TEXT NOT NULL,            -- the [[binaries]] category
    parent     TEXT NOT NULL,            -- "/" or "/v1.0.0/"
    name       TEXT NOT NULL,            -- "v1.0.0/" (directory) or "node.tar.gz"
    id         TEXT NOT NULL,
    is_dir     BOOLEAN NOT NULL,
    size       BIGINT NOT NULL,          -- bytes (files), 0 for directories
    date       TEXT NOT NULL,            -- as the upstream shows it
    sha256     TEXT,                     -- hex, files only
    blob_key   TEXT,                     -- files only
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (category, parent, name)
);
CREATE INDEX binaries_modified ON binaries(category, parent, updated_at);
