-- Freshness (issue 15): pushes of only what changed, and a scheduled push of nothing that
-- costs nothing.
--
-- The origin's generation counts the changes to what a push is planned from (files,
-- repositories, repomd.xml versions). Every change takes the single row's lock to bump it, in
-- the transaction of the change, so generations commit in order: whoever reads generation G
-- and then reads the files sees at least every change up to G. Each bump leaves the
-- directories it touched ('' for the whole origin) in origin_changes, so a push of some
-- directories can tell whether it covered every change a region had not received.
CREATE TABLE origin_state (
    id                 boolean PRIMARY KEY DEFAULT true CHECK (id),
    generation         bigint NOT NULL DEFAULT 0,
    -- When the last full walk of the origin that was recorded started (database clock).
    full_inventory_at  timestamptz,
    -- Files reached through a symlink or sharing their inode, as the last walks found: they
    -- change under another name than their own, so no watcher vouches for them; while
    -- there are any, scheduled pushes walk and pushes of some directories claim nothing.
    linked_files       integer NOT NULL DEFAULT 0
);
INSERT INTO origin_state DEFAULT VALUES;

CREATE TABLE origin_changes (
    generation  bigint PRIMARY KEY,
    scope       text[] NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now()
);

-- A region is synced at a generation when a push that ended ok left it holding everything
-- a full push at that generation would have written, with the region as configured at
-- region_updated_at. epoch grows whenever something else takes from what the region was
-- recorded to hold (a scan finding a copy missing or corrupt, a purge): a push records
-- itself only if the epoch it read before planning is still the epoch, so a change made
-- while it ran is never hidden.
CREATE TABLE region_sync (
    region_id          bigint PRIMARY KEY REFERENCES regions (id) ON DELETE CASCADE,
    epoch              bigint NOT NULL DEFAULT 0,
    generation         bigint,
    region_updated_at  timestamptz,
    synced_at          timestamptz
);

-- A watcher of the origin (`regionmirror watch`, or cron with push.watch). It holds the
-- advisory lock "watch/<id>" while it runs (PostgreSQL frees it when the process dies) and
-- beats. since is when it last began to see every change under root (its watches all in
-- place, no event lost since); NULL while it does not. A scheduled push may skip the walk
-- only while a live watcher has seen every change since the last full walk started.
CREATE TABLE origin_watchers (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    root          text NOT NULL,
    host          text NOT NULL DEFAULT '',
    pid           integer NOT NULL DEFAULT 0,
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    since         timestamptz,
    -- Changes seen and not yet pushed: a scheduled push does not skip its walk then.
    pending       integer NOT NULL DEFAULT 0
);

-- When each region first served each repomd.xml version verified: the freshness lag of a
-- publication is verified_at - repomd_versions.first_seen.
CREATE TABLE publications (
    repomd_version_id  bigint NOT NULL REFERENCES repomd_versions (id) ON DELETE CASCADE,
    region_id          bigint NOT NULL REFERENCES regions (id) ON DELETE CASCADE,
    verified_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (repomd_version_id, region_id)
);

-- When a region last moved (bucket, directory, endpoint, prefix or public URL changed):
-- servers offer its old place until they read the move, so pushes to the new place, which
-- may be the same bucket behind another URL, wait push.announce_delay after it.
ALTER TABLE regions ADD COLUMN moved_at timestamptz;

-- Subtree reads: path ranges in byte order, whatever the database's collation.
CREATE INDEX files_path_bytes ON files (path COLLATE "C");
