-- The whole schema of DESIGN.md. Paths are relative to the origin root and never contain
-- "..", so a row can never name something outside the tree.

CREATE TABLE regions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    kind         text NOT NULL CHECK (kind IN ('s3', 'file')),
    bucket       text NOT NULL DEFAULT '',
    dir          text NOT NULL DEFAULT '',
    endpoint     text NOT NULL DEFAULT '',
    s3_region    text NOT NULL DEFAULT '',
    prefix       text NOT NULL DEFAULT '',
    public_url   text NOT NULL CHECK (public_url ~ '^https?://'),
    country      text NOT NULL DEFAULT '' CHECK (country ~ '^([A-Z]{2})?$'),
    continent    text NOT NULL DEFAULT '' CHECK (continent IN ('', 'AF', 'AN', 'AS', 'EU', 'NA', 'OC', 'SA')),
    latitude     double precision CHECK (latitude BETWEEN -90 AND 90),
    longitude    double precision CHECK (longitude BETWEEN -180 AND 180),
    aliases      text[] NOT NULL DEFAULT '{}',
    netblocks    cidr[] NOT NULL DEFAULT '{}',
    includes     text[] NOT NULL DEFAULT '{}',
    weight       integer NOT NULL DEFAULT 100 CHECK (weight BETWEEN 0 AND 10000),
    access       text NOT NULL DEFAULT 'public' CHECK (access IN ('public', 'location-only')),
    credentials  text NOT NULL DEFAULT '',
    concurrency  integer NOT NULL DEFAULT 0 CHECK (concurrency BETWEEN 0 AND 1024),
    enabled      boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((latitude IS NULL) = (longitude IS NULL)),
    CHECK ((kind = 's3' AND bucket <> '' AND dir = '') OR (kind = 'file' AND dir <> '' AND bucket = ''))
);

CREATE TABLE files (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    path        text NOT NULL UNIQUE
                CHECK (path <> '' AND path !~ '^/' AND path !~ '(^|/)\.\.?(/|$)' AND path !~ '//'),
    size        bigint NOT NULL CHECK (size >= 0),
    sha256      bytea NOT NULL CHECK (length(sha256) = 32),
    md5         bytea NOT NULL CHECK (length(md5) = 16),
    mtime       timestamptz NOT NULL,
    first_seen  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);
-- gc looks for deleted files whose grace period has passed.
CREATE INDEX files_deleted_at ON files (deleted_at) WHERE deleted_at IS NOT NULL;

CREATE TABLE region_objects (
    region_id    bigint NOT NULL REFERENCES regions (id) ON DELETE CASCADE,
    file_id      bigint NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    size         bigint NOT NULL CHECK (size >= 0),
    sha256       bytea NOT NULL CHECK (length(sha256) = 32),
    state        text NOT NULL CHECK (state IN ('present', 'missing', 'corrupt', 'deleting')),
    pushed_at    timestamptz,
    verified_at  timestamptz,
    PRIMARY KEY (region_id, file_id)
);
-- locate and the server's snapshot read by file.
CREATE INDEX region_objects_file ON region_objects (file_id);

CREATE TABLE repositories (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$'),
    arch        text NOT NULL CHECK (arch ~ '^[A-Za-z0-9_]{1,32}$'),
    directory   text NOT NULL CHECK (directory !~ '^/' AND directory !~ '(^|/)\.\.?(/|$)'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (name, arch)
);

CREATE TABLE repomd_versions (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    repository_id  bigint NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    md5            bytea NOT NULL CHECK (length(md5) = 16),
    sha1           bytea NOT NULL CHECK (length(sha1) = 20),
    sha256         bytea NOT NULL CHECK (length(sha256) = 32),
    sha512         bytea NOT NULL CHECK (length(sha512) = 64),
    size           bigint NOT NULL CHECK (size >= 0),
    -- the newest <timestamp> of repomd.xml's <data> entries (Unix seconds)
    timestamp      bigint NOT NULL,
    first_seen     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (repository_id, sha256)
);
-- The newest version is current; the recent older ones are the metalink alternates.
CREATE INDEX repomd_versions_newest ON repomd_versions (repository_id, first_seen DESC, id DESC);

CREATE TABLE region_repos (
    region_id      bigint NOT NULL REFERENCES regions (id) ON DELETE CASCADE,
    repository_id  bigint NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    -- the repomd.xml the region was last verified to serve (NULL: none readable)
    repomd_sha256  bytea CHECK (length(repomd_sha256) = 32),
    state          text NOT NULL CHECK (state IN ('fresh', 'alternate', 'stale', 'missing', 'unreachable')),
    http_status    integer,
    error          text NOT NULL DEFAULT '',
    verified_at    timestamptz,
    PRIMARY KEY (region_id, repository_id)
);

CREATE TABLE runs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('push', 'scan', 'gc')),
    region_id    bigint REFERENCES regions (id) ON DELETE SET NULL,
    -- kept when the region is removed, so history stays readable
    region_name  text NOT NULL DEFAULT '',
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    status       text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'ok', 'failed')),
    files        bigint NOT NULL DEFAULT 0,
    bytes        bigint NOT NULL DEFAULT 0,
    counts       jsonb NOT NULL DEFAULT '{}',
    error        text NOT NULL DEFAULT '',
    host         text NOT NULL DEFAULT '',
    pid          integer NOT NULL DEFAULT 0
);
CREATE INDEX runs_recent ON runs (kind, started_at DESC);
CREATE INDEX runs_region ON runs (region_id, started_at DESC);

CREATE TABLE region_health (
    region_id              bigint PRIMARY KEY REFERENCES regions (id) ON DELETE CASCADE,
    state                  text NOT NULL DEFAULT 'unknown' CHECK (state IN ('unknown', 'up', 'down')),
    consecutive_failures   integer NOT NULL DEFAULT 0,
    consecutive_successes  integer NOT NULL DEFAULT 0,
    last_probe_at          timestamptz,
    last_ok_at             timestamptz,
    last_error             text NOT NULL DEFAULT '',
    changed_at             timestamptz NOT NULL DEFAULT now()
);
