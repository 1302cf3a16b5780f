-- On-demand regions (issue 14). A region's fill mode is 'push' (everything it carries is
-- pushed in advance) or 'on-demand': its repositories' metadata and its pinned prefixes are
-- pushed; every other file it carries is copied when a client there first asks for it, and
-- expires when no longer asked for. max_bytes caps what its on-demand copies hold (0: no cap).
ALTER TABLE regions ADD COLUMN fill text NOT NULL DEFAULT 'push' CHECK (fill IN ('push', 'on-demand'));
ALTER TABLE regions ADD COLUMN pins text[] NOT NULL DEFAULT '{}';
ALTER TABLE regions ADD COLUMN max_bytes bigint NOT NULL DEFAULT 0 CHECK (max_bytes >= 0);

-- When a client was last sent to (or asked for) this copy; servers count in memory and
-- write it in batches. Expiry and eviction read it; a trigger-free column, so writing it
-- never makes the servers' snapshot reread the copy.
ALTER TABLE region_objects ADD COLUMN last_requested_at timestamptz;
-- Expiry and eviction read a region's copies by last request.
CREATE INDEX region_objects_requested ON region_objects (region_id, last_requested_at);

-- A copy to make: one (region, file), however many clients missed it. 'queued' waits for a
-- worker (from not_before on); 'running' is leased to one worker until lease_until, and a
-- worker that dies leaves it to be taken over then; 'failed' gave up after its attempts
-- (kept, with the error, for operators; a miss after not_before queues it again). The
-- token fences a worker: whatever it records checks that the job is still its own, so a
-- worker that lost its lease, or whose job a purge or expiry removed, records nothing.
CREATE SEQUENCE fill_job_tokens;
CREATE TABLE fill_jobs (
    region_id    bigint NOT NULL REFERENCES regions (id) ON DELETE CASCADE,
    file_id      bigint NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    state        text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'failed')),
    attempts     integer NOT NULL DEFAULT 0,
    token        bigint NOT NULL DEFAULT nextval('fill_job_tokens'),
    queued_at    timestamptz NOT NULL DEFAULT now(),
    not_before   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    lease_until  timestamptz,
    worker       text NOT NULL DEFAULT '',
    error        text NOT NULL DEFAULT '',
    PRIMARY KEY (region_id, file_id)
);
-- Workers claim the oldest ready job.
CREATE INDEX fill_jobs_ready ON fill_jobs (queued_at) WHERE state = 'queued';
CREATE INDEX fill_jobs_leased ON fill_jobs (lease_until) WHERE state = 'running';

-- Requests answered in an on-demand region's own bucket against those it missed, summed
-- over every serve instance (the dashboard's in-region share).
ALTER TABLE redirect_counters ADD COLUMN misses bigint NOT NULL DEFAULT 0 CHECK (misses >= 0);

-- Fills, expiry and purges are runs too.
ALTER TABLE runs DROP CONSTRAINT runs_kind_check;
ALTER TABLE runs ADD CONSTRAINT runs_kind_check CHECK (kind IN ('push', 'scan', 'gc', 'fill', 'purge'));
