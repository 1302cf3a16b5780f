-- Usage over time (issue 18), summed over every serve instance like redirect_counters:
-- servers count in memory and add their deltas here in the background.

-- dnf's countme: one metalink (or mirrorlist) request per machine per week carries
-- countme=N, N the machine's age bucket (1: its first week, 2: up to a month, 3: up to six
-- months, 4: older). Counted per repository and arch as the server resolved them (only
-- repositories it serves, so hostile names never become rows), per ISO week (week is its
-- Monday, UTC) and bucket. Names, not ids: the history outlives a removed repository.
CREATE TABLE countme_weekly (
    repo    text NOT NULL,
    arch    text NOT NULL,
    week    date NOT NULL CHECK (extract(isodow FROM week) = 1),
    bucket  smallint NOT NULL CHECK (bucket BETWEEN 1 AND 4),
    hits    bigint NOT NULL DEFAULT 0 CHECK (hits >= 0),
    PRIMARY KEY (repo, arch, week, bucket)
);

-- Redirects per target (a region by name, '' for the origin) per UTC hour: requests and
-- the bytes of the files sent there.
CREATE TABLE redirect_hourly (
    hour      timestamptz NOT NULL CHECK (extract(epoch FROM hour)::bigint % 3600 = 0),
    region    text NOT NULL,
    requests  bigint NOT NULL DEFAULT 0 CHECK (requests >= 0),
    bytes     bigint NOT NULL DEFAULT 0 CHECK (bytes >= 0),
    PRIMARY KEY (hour, region)
);
