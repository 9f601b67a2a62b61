-- Packages, versions and everything the npm protocol keeps per package.
CREATE TABLE packages (
    name        TEXT PRIMARY KEY,
    rev         TEXT NOT NULL,            -- CouchDB-style "N-hex", changes on every write (compare-and-swap)
    description TEXT,                     -- of the latest version, for search
    keywords    TEXT,                     -- JSON array, of the latest version, for search
    created_at  BIGINT NOT NULL,
    modified_at BIGINT NOT NULL
);

CREATE TABLE versions (
    package      TEXT NOT NULL REFERENCES packages(name) ON DELETE CASCADE,
    version      TEXT NOT NULL,
    manifest     TEXT NOT NULL,           -- the version document as served, minus dist.tarball's host
    readme       TEXT,
    tarball_key  TEXT NOT NULL,           -- blob key
    tarball_file TEXT NOT NULL,           -- file name in the tarball URL, e.g. foo-1.0.0.tgz
    size         BIGINT NOT NULL,
    integrity    TEXT NOT NULL,
    publisher    TEXT,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (package, version)
);
CREATE INDEX versions_file ON versions(package, tarball_file);

CREATE TABLE dist_tags (
    package TEXT NOT NULL REFERENCES packages(name) ON DELETE CASCADE,
    tag     TEXT NOT NULL,
    version TEXT NOT NULL,
    PRIMARY KEY (package, tag)
);

CREATE TABLE maintainers (
    package   TEXT NOT NULL REFERENCES packages(name) ON DELETE CASCADE,
    user_name TEXT NOT NULL,
    PRIMARY KEY (package, user_name)
);

CREATE TABLE stars (
    package   TEXT NOT NULL REFERENCES packages(name) ON DELETE CASCADE,
    user_name TEXT NOT NULL,
    PRIMARY KEY (package, user_name)
);
CREATE INDEX stars_user ON stars(user_name);

-- Blocks are by name: a package can be blocked before it exists.
CREATE TABLE blocks (
    package    TEXT PRIMARY KEY,
    id         TEXT NOT NULL,
    reason     TEXT NOT NULL,
    operator   TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE downloads (
    package TEXT NOT NULL,
    version TEXT NOT NULL,
    day     TEXT NOT NULL,                -- YYYY-MM-DD (UTC)
    count   BIGINT NOT NULL,
    PRIMARY KEY (package, version, day)
);
CREATE INDEX downloads_day ON downloads(package, day);
