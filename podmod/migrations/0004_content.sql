-- Content matching: the lists' hashtag, phrase, url, pdq and sha256 entries matched against the
-- pod's posts, comments, profiles and photos. Content signals, their own counter and priority, the
-- durable scan work (new content batches, backfill and new-entry runs), photo hashes, and false
-- positives marked by moderators.

-- A content match is a signal of kind 'content' on the author's case: the list entry (list_id,
-- entry_kind, entry_value), the item (item_type 'Post', 'Comment', 'Profile' or 'Photo', item_id,
-- item_guid), the item's text as it was when matched (snapshot) and the matched excerpt or the
-- image distance (details). The same entry matching the same item is one active signal, whatever
-- runs twice.
CREATE UNIQUE INDEX signals_one_active_content_match
    ON podmod.signals (list_id, entry_kind, entry_value, item_type, item_id)
    WHERE kind = 'content' AND retracted_at IS NULL;
CREATE INDEX signals_content_by_person ON podmod.signals (person_id) WHERE kind = 'content';
CREATE INDEX signals_content_by_entry ON podmod.signals (entry_kind, entry_value)
    WHERE kind = 'content' AND retracted_at IS NULL;
CREATE INDEX signals_content_by_time ON podmod.signals (created_at) WHERE kind = 'content';

ALTER TABLE podmod.cases ADD COLUMN content_match_count integer NOT NULL DEFAULT 0;
CREATE INDEX cases_keyset_content ON podmod.cases
    (status, priority, coalesce(last_signal_at, '-infinity'::timestamptz), id)
    WHERE content_match_count > 0;

-- The priority rule (README, "Priority"), redefined with content matches:
--   10 per distinct reporter with a pending report, 2 per further pending report,
--   30 per active list match, 15 per active content match, 5 if the account is local.
CREATE OR REPLACE FUNCTION podmod.refresh_cases(case_ids bigint[]) RETURNS void LANGUAGE sql AS $$
    UPDATE podmod.cases c SET
        report_count = s.reports,
        pending_report_count = s.pending,
        reporter_count = s.reporters,
        list_match_count = s.list_matches,
        content_match_count = s.content_matches,
        first_signal_at = s.first_at,
        last_signal_at = s.last_at,
        priority = 10 * s.reporters + 2 * (s.pending - s.reporters) + 30 * s.list_matches
                   + 15 * s.content_matches + CASE WHEN c.local THEN 5 ELSE 0 END,
        updated_at = now()
    FROM (
        SELECT case_id,
               count(*) FILTER (WHERE kind = 'report') AS reports,
               count(*) FILTER (WHERE kind = 'report' AND NOT reviewed) AS pending,
               count(DISTINCT reporter_user_id) FILTER (WHERE kind = 'report' AND NOT reviewed)
                   AS reporters,
               count(*) FILTER (WHERE kind = 'list' AND retracted_at IS NULL) AS list_matches,
               count(*) FILTER (WHERE kind = 'content' AND retracted_at IS NULL)
                   AS content_matches,
               min(occurred_at) AS first_at,
               max(occurred_at) AS last_at
        FROM podmod.signals
        WHERE case_id = ANY (case_ids)
        GROUP BY case_id
    ) s
    WHERE c.id = s.case_id;
$$;

-- New content, as the reader finds it: a batch of ids of one table, written here before its job is
-- enqueued and marked done in the transaction that stores its matches (as intake_batches).
CREATE TABLE podmod.scan_batches (
    id bigserial PRIMARY KEY,
    item_type text NOT NULL CHECK (item_type IN ('Post', 'Comment', 'Profile', 'Photo')),
    item_ids integer[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    enqueued_at timestamptz,
    attempts integer NOT NULL DEFAULT 0,
    done_at timestamptz,
    matched integer
);
CREATE INDEX scan_batches_pending ON podmod.scan_batches (id) WHERE done_at IS NULL;

-- Content already on the pod, scanned table by table in id ranges: `podmod scan --backfill`
-- (every entry in force), or the entries a list version added ('list_version': list_id, version),
-- or every entry of one list ('list': its policy changed, or `podmod scan --list`). Each table
-- keeps its cursor, so a run resumes where it stopped.
CREATE TABLE podmod.scan_runs (
    id bigserial PRIMARY KEY,
    reason text NOT NULL CHECK (reason IN ('backfill', 'list_version', 'list')),
    list_id integer REFERENCES podmod.lists (id),
    version integer,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    enqueued_at timestamptz,
    attempts integer NOT NULL DEFAULT 0,
    done_at timestamptz
);
CREATE INDEX scan_runs_pending ON podmod.scan_runs (id) WHERE done_at IS NULL;

CREATE TABLE podmod.scan_run_tables (
    run_id bigint NOT NULL REFERENCES podmod.scan_runs (id),
    item_type text NOT NULL CHECK (item_type IN ('Post', 'Comment', 'Profile', 'Photo')),
    cursor bigint NOT NULL DEFAULT 0,        -- every id up to this one is scanned
    top bigint,                              -- the highest id to scan (set when the run starts)
    items bigint NOT NULL DEFAULT 0,
    matched bigint NOT NULL DEFAULT 0,
    done_at timestamptz,
    PRIMARY KEY (run_id, item_type)
);

-- Hashes of the pod's photos, so that new pdq and sha256 entries are matched without reading the
-- images again. Only the hashes are kept, never the image. pdq holds the 8 dihedral hashes
-- (original, rotations, flips), 32 bytes each.
CREATE TABLE podmod.photo_hashes (
    photo_id integer PRIMARY KEY,            -- diaspora photos.id
    sha256 text,
    pdq bytea,
    quality integer,
    source text NOT NULL,                    -- 'file' or 'remote'
    error text,                              -- why no hash could be made (too large, not an image)
    hashed_at timestamptz NOT NULL DEFAULT now()
);

-- "Not a match": a moderator's word that an entry does not match this item (item_type, item_id)
-- or any item of this account (person_id). Later scans leave such matches out.
CREATE TABLE podmod.content_false_positives (
    id bigserial PRIMARY KEY,
    entry_kind text NOT NULL,
    entry_value text NOT NULL,
    list_id integer REFERENCES podmod.lists (id),  -- where the entry came from (provenance)
    item_type text,
    item_id integer,
    person_id integer,
    signal_id bigint REFERENCES podmod.signals (id),
    actor text NOT NULL,
    reason text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((item_type IS NOT NULL AND item_id IS NOT NULL) <> (person_id IS NOT NULL))
);
CREATE UNIQUE INDEX content_false_positives_item
    ON podmod.content_false_positives (entry_kind, entry_value, item_type, item_id)
    WHERE person_id IS NULL;
CREATE UNIQUE INDEX content_false_positives_person
    ON podmod.content_false_positives (entry_kind, entry_value, person_id)
    WHERE person_id IS NOT NULL;

-- Ids missing below a content watermark when read (a transaction may commit a lower id after a
-- higher one): looked for again each reader pass until they appear or reader.gap_timeout passes.
CREATE TABLE podmod.scan_gaps (
    item_type text NOT NULL,
    item_id integer NOT NULL,
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (item_type, item_id)
);
