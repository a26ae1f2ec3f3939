-- What a podmin deciding on a held content entry needs to see: a few of the matches it had when
-- it was held (one per author, the newest first: account, item, field, excerpt, time; at most
-- breadth.SAMPLE_SIZE), and what holding it undid (matches retracted, cases closed, of those the
-- cases that had alerted the staff, and the accounts a moderator had locked on its cases).
ALTER TABLE podmod.content_entry_holds
    ADD COLUMN sample jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN matches_retracted integer NOT NULL DEFAULT 0,
    ADD COLUMN cases_closed integer NOT NULL DEFAULT 0,
    ADD COLUMN cases_alerted integer NOT NULL DEFAULT 0,
    ADD COLUMN accounts_locked integer NOT NULL DEFAULT 0;

-- A run over the content already on the pod for one entry of a list (a held entry confirmed),
-- rather than for all of the list's entries.
ALTER TABLE podmod.scan_runs
    ADD COLUMN entry_kind text,
    ADD COLUMN entry_value text;
