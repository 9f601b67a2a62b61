-- Change signals for SQLite (PostgreSQL has LISTEN/NOTIFY, migration 0011):
-- every committed change to what a packument is built from appends the
-- package's name here, in the write's own transaction. A server polls the log
-- (about every 500 ms) and drops the changed names from its caches, so
-- another process writing to the same file (`cairn sync`, a second server) is
-- seen without waiting for the cache TTL. Rows older than ten minutes are
-- deleted by the pollers.
CREATE TABLE package_changes (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    package    TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX package_changes_created ON package_changes(created_at);

CREATE TRIGGER packages_change_insert AFTER INSERT ON packages
    BEGIN INSERT INTO package_changes (package, created_at) VALUES (NEW.name, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)); END;
CREATE TRIGGER packages_change_update AFTER UPDATE ON packages
    BEGIN INSERT INTO package_changes (package, created_at) VALUES (NEW.name, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)); END;
CREATE TRIGGER packages_change_delete AFTER DELETE ON packages
    BEGIN INSERT INTO package_changes (package, created_at) VALUES (OLD.name, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)); END;
CREATE TRIGGER versions_change_insert AFTER INSERT ON versions
    BEGIN INSERT INTO package_changes (package, created_at) VALUES (NEW.package, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)); END;
CREATE TRIGGER versions_change_update AFTER UPDATE ON versions
    BEGIN INSERT INTO package_changes (package, created_at) VALUES (NEW.package, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)); END;
CREATE TRIGGER versions_change_delete AFTER DELETE ON versions
    BEGIN INSERT INTO package_changes (package, created_at) VALUES (OLD.package, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)); END;
CREATE TRIGGER dist_tags_change_insert AFTER INSERT ON dist_tags
    BEGIN INSERT INTO package_changes (package, created_at) VALUES (NEW.package, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)); END;
CREATE TRIGGER dist_tags_change_update AFTER UPDATE ON dist_tags
    BEGIN INSERT INTO package_changes (package, created_at) VALUES (NEW.package, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)); END;
CREATE TRIGGER dist_tags_change_delete AFTER DELETE ON dist_tags
    BEGIN INSERT INTO package_changes (package, created_at) VALUES (OLD.package, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)); END;
CREATE TRIGGER maintainers_change_insert AFTER INSERT ON maintainers
    BEGIN INSERT INTO package_changes (package, created_at) VALUES (NEW.package, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)); END;
CREATE TRIGGER maintainers_change_update AFTER UPDATE ON maintainers
    BEGIN INSERT INTO package_changes (package, created_at) VALUES (NEW.package, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)); END;
CREATE TRIGGER maintainers_change_delete AFTER DELETE ON maintainers
    BEGIN INSERT INTO package_changes (package, created_at) VALUES (OLD.package, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)); END;
CREATE TRIGGER stars_change_insert AFTER INSERT ON stars
    BEGIN INSERT INTO package_changes (package, created_at) VALUES (NEW.package, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)); END;
CREATE TRIGGER stars_change_update AFTER UPDATE ON stars
    BEGIN INSERT INTO package_changes (package, created_at) VALUES (NEW.package, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)); END;
CREATE TRIGGER stars_change_delete AFTER DELETE ON stars
    BEGIN INSERT INTO package_changes (package, created_at) VALUES (OLD.package, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)); END;
CREATE TRIGGER blocks_change_insert AFTER INSERT ON blocks
    BEGIN INSERT INTO package_changes (package, created_at) VALUES (NEW.package, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)); END;
CREATE TRIGGER blocks_change_update AFTER UPDATE ON blocks
    BEGIN INSERT INTO package_changes (package, created_at) VALUES (NEW.package, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)); END;
CREATE TRIGGER blocks_change_delete AFTER DELETE ON blocks
    BEGIN INSERT INTO package_changes (package, created_at) VALUES (OLD.package, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)); END;
CREATE TRIGGER tombstones_change_insert AFTER INSERT ON tombstones
    BEGIN INSERT INTO package_changes (package, created_at) VALUES (NEW.package, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)); END;
CREATE TRIGGER tombstones_change_update AFTER UPDATE ON tombstones
    BEGIN INSERT INTO package_changes (package, created_at) VALUES (NEW.package, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)); END;
CREATE TRIGGER tombstones_change_delete AFTER DELETE ON tombstones
    BEGIN INSERT INTO package_changes (package, created_at) VALUES (OLD.package, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)); END;
