-- Dist-tags keep the order they were created in (npm answers `latest` first,
-- then the others by creation). A tag moved to another version keeps its place.
-- Rows from before this migration share 0 and fall back to name order.
ALTER TABLE dist_tags ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;

-- The blob sweep asks which stored blobs some row still references.
CREATE INDEX versions_tarball_key ON versions(tarball_key);
CREATE INDEX proxy_tarballs_blob_key ON proxy_tarballs(blob_key);
