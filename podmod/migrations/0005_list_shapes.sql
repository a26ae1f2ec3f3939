-- The fediverse's shared lists as their authors mean them: severities, labels, entries known only
-- by a digest, canary rows, per-list settings (kinds, labels, lock_labels, format, canary), and
-- this pod's own list.

-- An entry's severity ('' in podmod's own format; suspend, silence or noop in the domain-list
-- shapes), its labels (normalised: what `labels` and `lock_labels` select on), and, for an
-- obfuscated domain matched by its SHA-256 digest (value 'sha256:<hex>'), the domain as published.
ALTER TABLE podmod.list_entries
    ADD COLUMN severity text NOT NULL DEFAULT '',
    ADD COLUMN labels text[] NOT NULL DEFAULT '{}',
    ADD COLUMN published text NOT NULL DEFAULT '';

-- A version of a million entries paid a foreign-key trigger per row (4 s of its 7 s): entries are
-- written only by podmod.lists, with the id of a lists row, and lists rows are never deleted. The
-- history index becomes a BRIN: a version's rows are stored together, so it finds them as well at
-- a fraction of the upkeep.
ALTER TABLE podmod.list_entries DROP CONSTRAINT IF EXISTS list_entries_list_id_fkey;
DROP INDEX podmod.list_entries_history;
CREATE INDEX list_entries_history ON podmod.list_entries USING brin (list_id, added_in);

-- The few entries known only by a digest (an obfuscated domain): matching hashes the pod's host
-- names only when one is in force, which this small index tells at once.
CREATE INDEX list_entries_digests ON podmod.list_entries (list_id)
    WHERE published <> '' AND removed_in IS NULL;

-- Mastodon exports read before this migration kept the severity in the label.
UPDATE podmod.list_entries e SET severity = e.label, label = ''
FROM podmod.list_versions v
WHERE v.list_id = e.list_id AND v.number = e.added_in AND v.format = 'mastodon'
  AND e.label IN ('suspend', 'silence', 'noop');
UPDATE podmod.list_entries
SET labels = ARRAY(SELECT DISTINCT lower(btrim(token))
                   FROM regexp_split_to_table(label, '[;,]') AS token
                   WHERE btrim(token) <> '')
WHERE label <> '';
UPDATE podmod.list_versions SET format = 'mastodon-csv' WHERE format = 'mastodon';

-- What a version's file held besides its entries, and which reader read it: a version read by an
-- older reader (podmod.lists.sync.READER) is fetched and read again at the next sync.
ALTER TABLE podmod.list_versions
    ADD COLUMN obfuscated_rows integer NOT NULL DEFAULT 0,  -- '*' domains without a digest
    ADD COLUMN unblocked_rows integer NOT NULL DEFAULT 0,   -- RapidBlock isBlocked false
    ADD COLUMN canaries text[] NOT NULL DEFAULT '{}',       -- hosts of canary rows
    ADD COLUMN reader integer NOT NULL DEFAULT 1;

-- Each list's settings as of its last sync, read by the matching SQL: which entry kinds apply,
-- which labels (empty: all), which labels lock on a review list, the forced format ('' = detect),
-- the required canary host. `origin` tells a subscription from this pod's own list.
ALTER TABLE podmod.lists
    ADD COLUMN kinds text[] NOT NULL
        DEFAULT '{account,pod,hashtag,phrase,url,pdq,sha256}',
    ADD COLUMN labels text[] NOT NULL DEFAULT '{}',
    ADD COLUMN lock_labels text[] NOT NULL DEFAULT '{}',
    ADD COLUMN format text NOT NULL DEFAULT '',
    ADD COLUMN require_canary text NOT NULL DEFAULT '',
    ADD COLUMN origin text NOT NULL DEFAULT 'subscription'
        CHECK (origin IN ('subscription', 'local'));

-- Every name a host answers to as a list entry: itself and each parent domain on label
-- boundaries (down to two labels), each with and without the host's port. `x.alpha.example:8443`
-- is named by `x.alpha.example:8443`, `x.alpha.example`, `alpha.example:8443`, `alpha.example`.
-- (The matching of many people inlines the same expression; this serves one-host probes.)
CREATE FUNCTION podmod.host_names(host text) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ARRAY(
        SELECT array_to_string(h.labels[i:], '.') || s.port
        FROM (SELECT string_to_array(split_part(host, ':', 1), '.') AS labels,
                     nullif(split_part(host, ':', 2), '') AS port) h,
             generate_series(1, greatest(cardinality(h.labels) - 1, 1)) AS i,
             LATERAL (VALUES (''), (':' || h.port)) AS s (port)
        WHERE s.port IS NOT NULL
        ORDER BY i, s.port DESC)
$$;

-- The priority rule (README, "Priority"), with list severities: an active list match weighs 30,
-- or 15 when its entry is a `silence` (Mastodon's limit) rather than a suspension.
CREATE OR REPLACE FUNCTION podmod.refresh_cases(case_ids bigint[]) RETURNS void LANGUAGE sql AS $$
    UPDATE podmod.cases c SET
        report_count = s.reports,
        pending_report_count = s.pending,
        reporter_count = s.reporters,
        list_match_count = s.list_matches,
        content_match_count = s.content_matches,
        first_signal_at = s.first_at,
        last_signal_at = s.last_at,
        priority = 10 * s.reporters + 2 * (s.pending - s.reporters)
                   + 30 * (s.list_matches - s.silenced) + 15 * s.silenced
                   + 15 * s.content_matches + CASE WHEN c.local THEN 5 ELSE 0 END,
        updated_at = now()
    FROM (
        SELECT case_id,
               count(*) FILTER (WHERE kind = 'report') AS reports,
               count(*) FILTER (WHERE kind = 'report' AND NOT reviewed) AS pending,
               count(DISTINCT reporter_user_id) FILTER (WHERE kind = 'report' AND NOT reviewed)
                   AS reporters,
               count(*) FILTER (WHERE kind = 'list' AND retracted_at IS NULL) AS list_matches,
               count(*) FILTER (WHERE kind = 'list' AND retracted_at IS NULL
                                AND details ->> 'severity' = 'silence') AS silenced,
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
