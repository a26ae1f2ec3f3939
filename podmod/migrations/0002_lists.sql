-- Shared blocklists: subscriptions, their versions, their entries (kept as validity ranges over
-- versions, so a version costs only its changes), list signals, and decisions.

CREATE TABLE podmod.lists (
    id serial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    url text NOT NULL,
    policy text NOT NULL CHECK (policy IN ('review', 'lock', 'ignore', 'allow')),
    etag text,
    last_modified text,
    current_version integer,                 -- number of the version in force (NULL: none yet)
    last_attempt_at timestamptz,
    last_success_at timestamptz,
    last_error text,
    last_error_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE podmod.list_versions (
    id bigserial PRIMARY KEY,
    list_id integer NOT NULL REFERENCES podmod.lists (id),
    number integer NOT NULL,                 -- 1, 2, 3, ... per list
    sha256 text NOT NULL,                    -- of the file as fetched
    status text NOT NULL CHECK (status IN ('applied', 'held', 'superseded')),
    entries integer NOT NULL,
    added integer NOT NULL,
    removed integer NOT NULL,
    skipped_rows integer NOT NULL DEFAULT 0, -- invalid rows left out (skip_invalid = true)
    format text NOT NULL,                    -- 'podmod' or 'mastodon'
    signed_comment text,                     -- the minisign trusted comment, when signed
    held_reason text,
    held_body bytea,                         -- the file of a held version, until approved
    fetched_at timestamptz NOT NULL DEFAULT now(),
    applied_at timestamptz,
    approved_by text,
    UNIQUE (list_id, number)
);

-- An entry is in force from version `added_in` until the version that removed it (`removed_in`).
CREATE TABLE podmod.list_entries (
    id bigserial PRIMARY KEY,
    list_id integer NOT NULL REFERENCES podmod.lists (id),
    kind text NOT NULL,
    value text NOT NULL,
    label text NOT NULL DEFAULT '',
    comment text NOT NULL DEFAULT '',
    line integer,
    added_in integer NOT NULL,
    removed_in integer
);
-- One index serves both: no entry twice in a list, and lookups by (kind, value) across lists.
CREATE UNIQUE INDEX list_entries_active ON podmod.list_entries (kind, value, list_id)
    WHERE removed_in IS NULL;
CREATE INDEX list_entries_history ON podmod.list_entries (list_id, added_in);

-- List and content signals name the account and the entry that matched.
ALTER TABLE podmod.signals
    ADD COLUMN person_id integer,
    ADD COLUMN list_id integer REFERENCES podmod.lists (id),
    ADD COLUMN entry_kind text,
    ADD COLUMN entry_value text;
CREATE UNIQUE INDEX signals_one_active_list_match
    ON podmod.signals (list_id, entry_kind, entry_value, person_id)
    WHERE kind = 'list' AND retracted_at IS NULL;
CREATE INDEX signals_list_by_person ON podmod.signals (person_id) WHERE kind = 'list';

-- Every decision taken on a case or an account, by a person or by a list policy.
CREATE TABLE podmod.decisions (
    id bigserial PRIMARY KEY,
    case_id bigint REFERENCES podmod.cases (id),
    person_id integer,
    account text,
    action text NOT NULL,                    -- lock, unlock, mark_reviewed, dismiss, note
    actor text NOT NULL,
    source text NOT NULL,
    reason text,
    details jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX decisions_by_case ON podmod.decisions (case_id, id);
CREATE INDEX decisions_by_person ON podmod.decisions (person_id, id);
