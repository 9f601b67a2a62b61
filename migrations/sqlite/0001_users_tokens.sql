-- Users and their tokens. Times are milliseconds since the Unix epoch.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    email         TEXT,
    password_hash TEXT NOT NULL,
    rev           TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE tokens (
    token_key      TEXT PRIMARY KEY,          -- sha512 hex of the raw token; the raw token is never stored
    user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    mark           TEXT NOT NULL,             -- masked form shown in listings
    name           TEXT,
    readonly       BOOLEAN NOT NULL,
    automation     BOOLEAN NOT NULL,
    cidr_whitelist TEXT NOT NULL,             -- JSON array of CIDR strings
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    last_used_at   BIGINT
);
CREATE INDEX tokens_user_id ON tokens(user_id);
