-- What the server redirected, summed over every serve instance: requests and bytes (the
-- sizes of the files) sent to each region, and to the origin (region = ''), the origin's
-- fallback. Servers count in memory and add their deltas here in the background.

CREATE TABLE redirect_counters (
    region      text PRIMARY KEY,
    requests    bigint NOT NULL DEFAULT 0 CHECK (requests >= 0),
    bytes       bigint NOT NULL DEFAULT 0 CHECK (bytes >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
