-- How broadly each content entry matches: the distinct authors it has matched (one row each, so
-- that a batch stored twice counts nobody twice), and the entries held for approval because they
-- matched more authors than list_sync.max_new_match_share of the people the pod knows (and more
-- than NEW_MATCHES_FLOOR): a held entry's matches are no longer stored until a podmin confirms it.
CREATE TABLE podmod.content_entry_authors (
    list_id integer NOT NULL REFERENCES podmod.lists (id) ON DELETE CASCADE,
    entry_kind text NOT NULL,
    entry_value text NOT NULL,
    person_id integer NOT NULL,
    PRIMARY KEY (list_id, entry_kind, entry_value, person_id)
);

CREATE TABLE podmod.content_entry_holds (
    list_id integer NOT NULL REFERENCES podmod.lists (id) ON DELETE CASCADE,
    entry_kind text NOT NULL,
    entry_value text NOT NULL,
    authors integer NOT NULL,   -- distinct authors matched when it was held
    known integer NOT NULL,     -- people the pod knew then
    held_reason text NOT NULL,
    held_at timestamptz NOT NULL DEFAULT now(),
    confirmed_at timestamptz,
    confirmed_by text,
    PRIMARY KEY (list_id, entry_kind, entry_value)
);

-- The authors the content matches in force already name count: an entry that matched too many
-- before this migration is held by its next match.
INSERT INTO podmod.content_entry_authors (list_id, entry_kind, entry_value, person_id)
SELECT DISTINCT list_id, entry_kind, entry_value, person_id FROM podmod.signals
WHERE kind = 'content' AND retracted_at IS NULL AND person_id IS NOT NULL;
