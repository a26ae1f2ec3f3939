-- A first version of a million entries, stored faster (podmod.lists.versions._copy_entries).

-- Each row's id came from the sequence one call at a time, a lock and a page change per row: a
-- fourth of the COPY of a million rows. Each session now takes ids a thousand at a time (the ids
-- a session leaves unused are skipped: ids are unique and grow, never dense).
ALTER SEQUENCE podmod.list_entries_id_seq CACHE 1000;

-- The unique index of the entries in force leads with the value: sorting a million values of one
-- kind by (kind, value) compares every pair in full, by (value, kind) mostly by a prefix of the
-- value alone. Every lookup names kind and value, so either order finds it. The questions that
-- name a kind alone (which kinds a list holds, asked at every reader pass) go to a BRIN index on
-- the kind instead: a few pages, and for a table of one kind the others are answered at once.
DROP INDEX podmod.list_entries_active;

-- Values are compared byte by byte ("C"): equality is what it was (every deterministic collation
-- compares equal texts equal), and sorting them, as building the unique index does, skips the
-- locale's rules. Entries shown in order sort in code point order. With both, the index of a
-- million entries builds in 0.95 s instead of 2.35 s.
ALTER TABLE podmod.list_entries ALTER COLUMN value TYPE text COLLATE "C";

CREATE UNIQUE INDEX list_entries_active ON podmod.list_entries (value, kind, list_id)
    WHERE removed_in IS NULL;
CREATE INDEX list_entries_kinds ON podmod.list_entries USING brin (kind);
