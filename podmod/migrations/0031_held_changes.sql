-- What a version held for approval would add and remove, worked out once (at its page's first
-- view, or `podmod lists diff`) and kept here, for its page to show in keyset pages: read again
-- from its file on every view, a held version of a million rows took 5 s a page. Rows of a list
-- go when a later version is stored or held, or this one approved (podmod.lists.versions).
CREATE TABLE podmod.held_changes (
    list_id integer NOT NULL,
    number integer NOT NULL,
    change text COLLATE "C" NOT NULL CHECK (change IN ('added', 'removed')),
    kind text COLLATE "C" NOT NULL,
    value text COLLATE "C" NOT NULL,
    published text NOT NULL DEFAULT '',
    PRIMARY KEY (list_id, number, change, kind, value)
);

-- Whether held_changes holds this held version's changes.
ALTER TABLE podmod.list_versions ADD COLUMN changes_kept boolean NOT NULL DEFAULT false;
