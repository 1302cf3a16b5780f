-- The synthetic database of the snapshot benchmark (BENCHMARKS.md): by default 8 regions,
-- one million files, every file verified in every region (8 million region_objects rows).
-- Apply to a migrated, empty database; takes a few minutes per million files x 8 regions.
-- Other sizes through psql variables (issue 16 measures 1M and 3M files):
--
--	psql -v files=3000000 -v regions=8 -f testdata/bench/fill.sql postgres://...
\if :{?files}
\else
\set files 1000000
\endif
\if :{?regions}
\else
\set regions 8
\endif
INSERT INTO regions (name, kind, bucket, public_url, country, continent, latitude, longitude)
SELECT 'region-' || g, 's3', 'bucket-' || g, 'https://bucket-' || g || '.example', 'US', 'NA', 40, -70 + g
FROM generate_series(1, :regions) g;
INSERT INTO files (path, size, sha256, md5, mtime)
SELECT 'fedora/linux/releases/40/Everything/x86_64/os/Packages/' || chr(97 + (g % 26)) || '/'
       || 'python3-package-number-' || g || '-1.2.3-1.fc40.noarch.rpm',
       g, sha256(g::text::bytea), decode(md5(g::text), 'hex'), now()
FROM generate_series(1, :files) g;
INSERT INTO region_objects (region_id, file_id, size, sha256, state, verified_at, current)
SELECT r.id, f.id, f.size, f.sha256, 'present', now(), true FROM regions r, files f;
