-- A copy is current when it holds the origin's present bytes of its file. The writers keep
-- the flag (RecordObjects when a copy is recorded, ApplyInventory when a file changes), so
-- the server reads every verified copy from one index instead of joining millions of rows
-- with files on size and SHA-256.
ALTER TABLE region_objects ADD COLUMN current boolean NOT NULL DEFAULT false;
UPDATE region_objects o SET current = (o.size = f.size AND o.sha256 = f.sha256) FROM files f WHERE f.id = o.file_id;
CREATE INDEX region_objects_verified ON region_objects (region_id, file_id) WHERE state = 'present' AND current;
