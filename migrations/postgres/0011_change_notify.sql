-- Cross-node cache invalidation: every committed change to what a packument is
-- built from notifies channel `cairn_package` with the package name. NOTIFY is
-- transactional (sent at commit, never for a rolled-back write) and folds equal
-- payloads within one transaction, so a publish touching several rows sends one.
CREATE FUNCTION cairn_notify_by_name() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('cairn_package', OLD.name);
    ELSE
        PERFORM pg_notify('cairn_package', NEW.name);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE FUNCTION cairn_notify_by_package() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('cairn_package', OLD.package);
    ELSE
        PERFORM pg_notify('cairn_package', NEW.package);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER packages_notify AFTER INSERT OR UPDATE OR DELETE ON packages
    FOR EACH ROW EXECUTE FUNCTION cairn_notify_by_name();
CREATE TRIGGER versions_notify AFTER INSERT OR UPDATE OR DELETE ON versions
    FOR EACH ROW EXECUTE FUNCTION cairn_notify_by_package();
CREATE TRIGGER dist_tags_notify AFTER INSERT OR UPDATE OR DELETE ON dist_tags
    FOR EACH ROW EXECUTE FUNCTION cairn_notify_by_package();
CREATE TRIGGER maintainers_notify AFTER INSERT OR UPDATE OR DELETE ON maintainers
    FOR EACH ROW EXECUTE FUNCTION cairn_notify_by_package();
CREATE TRIGGER stars_notify AFTER INSERT OR UPDATE OR DELETE ON stars
    FOR EACH ROW EXECUTE FUNCTION cairn_notify_by_package();
CREATE TRIGGER blocks_notify AFTER INSERT OR UPDATE OR DELETE ON blocks
    FOR EACH ROW EXECUTE FUNCTION cairn_notify_by_package();
CREATE TRIGGER tombstones_notify AFTER INSERT OR UPDATE OR DELETE ON tombstones
    FOR EACH ROW EXECUTE FUNCTION cairn_notify_by_package();
