-- Webhooks: the hooks users register, the outbox of events written in the same
-- transaction as the change, and one delivery row per (event, hook).
CREATE TABLE hooks (
    id            TEXT PRIMARY KEY,
    owner         TEXT NOT NULL,            -- user name
    type          TEXT NOT NULL,            -- package | scope | owner
    name          TEXT NOT NULL,            -- package name, @scope or user name
    endpoint      TEXT NOT NULL,
    secret        TEXT NOT NULL,            -- signs deliveries; never returned by any endpoint
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    delivered     BOOLEAN NOT NULL DEFAULT FALSE,
    last_delivery BIGINT,
    response_code INTEGER,
    status        TEXT NOT NULL             -- active
);
CREATE INDEX hooks_owner ON hooks (owner, created_at);
CREATE INDEX hooks_target ON hooks (type, name);

-- The outbox: written with the change, removed once fanned out to deliveries.
CREATE TABLE hook_events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    package    TEXT NOT NULL,
    event      TEXT NOT NULL,               -- package:publish, package:dist-tag, ...
    data       TEXT NOT NULL,               -- JSON detail: version, tag, user
    owners     TEXT NOT NULL,               -- JSON list of the package's maintainers (for owner hooks)
    created_at BIGINT NOT NULL
);

CREATE TABLE hook_deliveries (
    id            TEXT PRIMARY KEY,         -- sent as x-cairn-delivery, the same on every attempt
    hook_id       TEXT NOT NULL REFERENCES hooks(id) ON DELETE CASCADE,
    event_seq     BIGINT NOT NULL,          -- order of deliveries to one hook
    event         TEXT NOT NULL,
    package       TEXT NOT NULL,
    body          TEXT NOT NULL,            -- the exact bytes sent (and signed)
    state         TEXT NOT NULL,            -- pending | delivered | failed
    attempts      INTEGER NOT NULL,
    response_code INTEGER,
    last_error    TEXT,
    run_after     BIGINT NOT NULL,
    claimed_until BIGINT NOT NULL,          -- a worker's lease on the delivery
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    finished_at   BIGINT,
    UNIQUE (event_seq, hook_id)
);
CREATE INDEX hook_deliveries_queue ON hook_deliveries (state, run_after);
CREATE INDEX hook_deliveries_hook ON hook_deliveries (hook_id, event_seq);
