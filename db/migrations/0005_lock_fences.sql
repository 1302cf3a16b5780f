-- Fencing for region locks. Whoever takes a lock bumps its generation on the lock's own
-- session; a write made under the lock checks, in its transaction, that the generation is
-- still its own and that the holder's session still holds the lock. A run whose lock
-- connection died, or whose lock someone else took since, can therefore record nothing.
-- `region edit` of a region's location bumps its write lock's generation too, so a push
-- of the old location cannot record its copies as the new location's.
CREATE TABLE lock_generations (
    name        text PRIMARY KEY,
    generation  bigint NOT NULL,
    holder_pid  integer NOT NULL
);
