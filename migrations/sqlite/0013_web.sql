-- The web UI: npm's web login (`POST /-/v1/login`) and browser sessions.
-- Secrets are stored as their sha512 hex only. Times are milliseconds since the Unix epoch.
CREATE TABLE web_logins (
    login_key  TEXT PRIMARY KEY,           -- sha512 hex of the id in the loginUrl
    done_key   TEXT NOT NULL UNIQUE,       -- sha512 hex of the secret in the doneUrl
    hostname   TEXT,                       -- what npm says the login is for, shown on the page
    user_id    TEXT REFERENCES users(id) ON DELETE CASCADE, -- set once a person signed in at the loginUrl
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX web_logins_expires ON web_logins(expires_at);

CREATE TABLE web_sessions (
    session_key TEXT PRIMARY KEY,          -- sha512 hex of the cookie's value
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX web_sessions_expires ON web_sessions(expires_at);
