-- Change tracking for the server's per-file data. Reading a million files and every verified
-- copy costs seconds; a server that read them once only needs what changed since. Each row
-- of files and region_objects carries the transaction that last changed what the server
-- uses of it, and deleted rows leave a record behind. A reader that remembers the snapshot
-- (pg_current_snapshot) of its last read selects the rows whose transaction that snapshot
-- did not see: unlike a sequence, this misses no transaction that commits out of order.
ALTER TABLE files ADD COLUMN changed_xid xid8 NOT NULL DEFAULT pg_current_xact_id();
ALTER TABLE region_objects ADD COLUMN changed_xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX files_changed ON files (changed_xid);
CREATE INDEX region_objects_changed ON region_objects (changed_xid);

CREATE FUNCTION regionmirror_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.changed_xid := pg_current_xact_id();
    RETURN NEW;
END $$;

-- Only changes the server sees: a scan that rewrites verified_at of every copy must not make
-- every copy look changed.
CREATE TRIGGER files_touch BEFORE UPDATE ON files FOR EACH ROW
    WHEN ((OLD.path, OLD.size, OLD.sha256, OLD.deleted_at IS NULL) IS DISTINCT FROM (NEW.path, NEW.size, NEW.sha256, NEW.deleted_at IS NULL))
    EXECUTE FUNCTION regionmirror_touch();
CREATE TRIGGER region_objects_touch BEFORE UPDATE ON region_objects FOR EACH ROW
    WHEN ((OLD.state = 'present' AND OLD.current) IS DISTINCT FROM (NEW.state = 'present' AND NEW.current))
    EXECUTE FUNCTION regionmirror_touch();

-- Deleted rows: region_id NULL for a file, else a copy. Kept for a day; a reader
-- whose last read is older than half of that reads everything again.
CREATE TABLE snapshot_removals (
    xid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
    removed_at timestamptz NOT NULL DEFAULT now(),
    file_id    bigint NOT NULL,
    region_id  bigint
);
CREATE INDEX snapshot_removals_xid ON snapshot_removals (xid);
CREATE INDEX snapshot_removals_at ON snapshot_removals (removed_at);

-- Statement triggers with transition tables: one insert per DELETE statement, however many
-- rows it removed.
CREATE FUNCTION regionmirror_removed_files() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM snapshot_removals WHERE removed_at < now() - interval '1 day';
    INSERT INTO snapshot_removals (file_id) SELECT id FROM gone;
    RETURN NULL;
END $$;
CREATE FUNCTION regionmirror_removed_objects() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM snapshot_removals WHERE removed_at < now() - interval '1 day';
    -- Every copy, verified or not: one verified when the reader last looked may have
    -- changed since, and that change left with the row.
    INSERT INTO snapshot_removals (file_id, region_id) SELECT file_id, region_id FROM gone;
    RETURN NULL;
END $$;
CREATE TRIGGER files_removed AFTER DELETE ON files REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION regionmirror_removed_files();
CREATE TRIGGER region_objects_removed AFTER DELETE ON region_objects REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION regionmirror_removed_objects();

-- Which database history a read belongs to: the cluster's system identifier and timeline
-- (a restore elsewhere, a point-in-time recovery and a failover change them) and the
-- database's OID. A reader compares it before trusting transaction IDs it remembers.
-- Some managed services may refuse the control functions: the OID alone is better than no
-- reads at all.
CREATE FUNCTION regionmirror_origin() RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE
    db text := (SELECT oid FROM pg_database WHERE datname = current_database())::text;
BEGIN
    RETURN (SELECT system_identifier FROM pg_control_system())::text || '/' ||
        (SELECT timeline_id FROM pg_control_checkpoint())::text || '/' || db;
EXCEPTION WHEN insufficient_privilege THEN
    RETURN 'db/' || db;
END $$;

-- TRUNCATE fires no DELETE trigger: it leaves a marker (file 0) that makes readers read
-- everything again.
CREATE FUNCTION regionmirror_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO snapshot_removals (file_id) VALUES (0);
    RETURN NULL;
END $$;
CREATE TRIGGER files_truncated AFTER TRUNCATE ON files
    FOR EACH STATEMENT EXECUTE FUNCTION regionmirror_truncated();
CREATE TRIGGER region_objects_truncated AFTER TRUNCATE ON region_objects
    FOR EACH STATEMENT EXECUTE FUNCTION regionmirror_truncated();
