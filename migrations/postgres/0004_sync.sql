-- Upstream registries, scope routing, the task queue, the changes feed and the proxy cache.
CREATE TABLE registries (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    host          TEXT NOT NULL,
    change_stream TEXT,
    type          TEXT NOT NULL,            -- npm | cnpm | <upstream-adapter plugin name>
    user_prefix   TEXT NOT NULL,
    auth_token    TEXT,                     -- never returned by any endpoint
    is_default    BOOLEAN NOT NULL,
    from_config   BOOLEAN NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE scopes (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    registry_id TEXT NOT NULL REFERENCES registries(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- The registry a synced package comes from (NULL: published here).
ALTER TABLE packages ADD COLUMN registry_id TEXT;

CREATE TABLE tasks (
    id          TEXT PRIMARY KEY,
    type        TEXT NOT NULL,              -- package
    target      TEXT NOT NULL,              -- package name
    state       TEXT NOT NULL,              -- waiting | processing | success | error
    priority    INTEGER NOT NULL,
    data        TEXT NOT NULL,              -- JSON options
    attempts    INTEGER NOT NULL,
    error       TEXT,
    author      TEXT,
    claimed_by  TEXT,
    run_after   BIGINT NOT NULL,
    heartbeat_at BIGINT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX tasks_queue ON tasks(state, run_after);
CREATE INDEX tasks_target ON tasks(type, target, state);

CREATE TABLE changes (
    seq        BIGSERIAL PRIMARY KEY,
    type       TEXT NOT NULL,
    package    TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE change_positions (
    registry_id TEXT PRIMARY KEY,
    since       TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- Packuments fetched from an upstream in proxy mode, as the upstream sent them.
CREATE TABLE proxy_packuments (
    name        TEXT PRIMARY KEY,
    registry_id TEXT NOT NULL,
    doc         TEXT NOT NULL,
    fetched_at  BIGINT NOT NULL
);

-- Tarballs fetched through proxy mode.
CREATE TABLE proxy_tarballs (
    name       TEXT NOT NULL,
    file       TEXT NOT NULL,
    version    TEXT NOT NULL,
    blob_key   TEXT NOT NULL,
    size       BIGINT NOT NULL,
    integrity  TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (name, file)
);

-- At most one waiting task per target: new requests merge into it.
CREATE UNIQUE INDEX tasks_one_waiting ON tasks(type, target) WHERE state = 'waiting';
