-- Versions that were unpublished: npm never lets a name@version be reused.
CREATE TABLE tombstones (
    package        TEXT NOT NULL,
    version        TEXT NOT NULL,
    unpublished_at BIGINT NOT NULL,
    PRIMARY KEY (package, version)
);
