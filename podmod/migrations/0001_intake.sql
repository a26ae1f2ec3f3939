-- podmod's own state for report intake: cases, their signals, intake bookkeeping and the audit log.
-- Every timestamp is timestamptz (UTC); diaspora's naive UTC timestamps are converted when read.

CREATE TABLE podmod.cases (
    id bigserial PRIMARY KEY,
    -- What the case is about: 'person:<people.id>', or 'item:<Post|Comment>:<id>' for a report whose
    -- item was gone before podmod ever saw it (the author is unknown).
    subject text NOT NULL,
    person_id integer,                       -- diaspora people.id, NULL when unknown
    account text,                            -- diaspora handle (lower-case), NULL when unknown
    local boolean NOT NULL DEFAULT false,    -- the account lives on this pod (people.owner_id set)
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved', 'dismissed')),
    resolution text,                         -- why it left the queue, e.g. 'reviewed_in_pod'
    priority integer NOT NULL DEFAULT 0,     -- podmod.refresh_cases() keeps it; README explains it
    report_count integer NOT NULL DEFAULT 0,
    pending_report_count integer NOT NULL DEFAULT 0,
    reporter_count integer NOT NULL DEFAULT 0,
    list_match_count integer NOT NULL DEFAULT 0,
    first_signal_at timestamptz,
    last_signal_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    closed_at timestamptz
);
-- One open case per account: a second worker racing to open it hits this index.
CREATE UNIQUE INDEX cases_one_open_per_subject ON podmod.cases (subject) WHERE status = 'open';
CREATE INDEX cases_queue ON podmod.cases (status, priority DESC, last_signal_at DESC, id DESC);
CREATE INDEX cases_by_subject ON podmod.cases (subject, id DESC);
CREATE INDEX cases_by_account ON podmod.cases (account);

CREATE TABLE podmod.signals (
    id bigserial PRIMARY KEY,
    case_id bigint NOT NULL REFERENCES podmod.cases (id),
    kind text NOT NULL CHECK (kind IN ('report', 'list', 'content')),
    report_id integer,                       -- diaspora reports.id (kind 'report')
    item_type text,                          -- 'Post' or 'Comment'
    item_id integer,
    item_guid text,
    item_missing boolean NOT NULL DEFAULT false,  -- the item was deleted before podmod read it
    reporter_user_id integer,                -- diaspora users.id of the reporter
    reporter text,                           -- the reporter's diaspora handle
    reason text,                             -- what the reporter wrote
    snapshot text,                           -- the reported text as it was when read (evidence)
    details jsonb NOT NULL DEFAULT '{}',     -- kind-specific facts (reshare root, parent post, ...)
    reviewed boolean NOT NULL DEFAULT false,
    reviewed_at timestamptz,
    reviewed_by text,
    retracted_at timestamptz,
    occurred_at timestamptz,                 -- when it happened on the pod (reports.created_at)
    created_at timestamptz NOT NULL DEFAULT now()
);
-- Exactly once: a report is one signal, whatever runs twice.
CREATE UNIQUE INDEX signals_one_per_report ON podmod.signals (report_id) WHERE kind = 'report';
CREATE INDEX signals_by_case ON podmod.signals (case_id, id);
CREATE INDEX signals_by_item ON podmod.signals (item_type, item_id) WHERE kind = 'report';
CREATE INDEX signals_pending_reports ON podmod.signals (report_id)
    WHERE kind = 'report' AND NOT reviewed;

-- Intake: each batch of report ids is written here before its job is enqueued, and marked done in the
-- same transaction that stores its signals. Redis only carries the work; this table is the truth.
CREATE TABLE podmod.intake_batches (
    id bigserial PRIMARY KEY,
    report_ids integer[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    enqueued_at timestamptz,
    attempts integer NOT NULL DEFAULT 0,
    done_at timestamptz,
    ingested integer
);
CREATE INDEX intake_batches_pending ON podmod.intake_batches (id) WHERE done_at IS NULL;

-- Report ids below the watermark that were missing when read: a transaction may commit a lower id
-- after a higher one. The reader looks for them again until reader.gap_timeout passes.
CREATE TABLE podmod.intake_gaps (
    report_id integer PRIMARY KEY,
    first_seen_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE podmod.watermarks (
    name text PRIMARY KEY,
    value bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Append-only: who did what, when, why and from where.
CREATE TABLE podmod.audit (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL,
    action text NOT NULL,
    case_id bigint REFERENCES podmod.cases (id),
    account text,
    source text NOT NULL,                    -- 'web', 'cli', 'reader', 'list:<name>', ...
    reason text,
    details jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_by_time ON podmod.audit (at DESC, id DESC);
CREATE INDEX audit_by_case ON podmod.audit (case_id);

-- Recompute the counters and the priority of the given cases from their signals. The priority rule
-- (README, "Priority") lives here and only here:
--   10 per distinct reporter with a pending report, 2 per further pending report,
--   30 per active list match, 5 if the account is local (this pod can act on it).
-- The queue orders by priority, then by the newest signal, so recency breaks ties.
CREATE FUNCTION podmod.refresh_cases(case_ids bigint[]) RETURNS void LANGUAGE sql AS $$
    UPDATE podmod.cases c SET
        report_count = s.reports,
        pending_report_count = s.pending,
        reporter_count = s.reporters,
        list_match_count = s.list_matches,
        first_signal_at = s.first_at,
        last_signal_at = s.last_at,
        priority = 10 * s.reporters + 2 * (s.pending - s.reporters) + 30 * s.list_matches
                   + CASE WHEN c.local THEN 5 ELSE 0 END,
        updated_at = now()
    FROM (
        SELECT case_id,
               count(*) FILTER (WHERE kind = 'report') AS reports,
               count(*) FILTER (WHERE kind = 'report' AND NOT reviewed) AS pending,
               count(DISTINCT reporter_user_id) FILTER (WHERE kind = 'report' AND NOT reviewed)
                   AS reporters,
               count(*) FILTER (WHERE kind = 'list' AND retracted_at IS NULL) AS list_matches,
               min(occurred_at) AS first_at,
               max(occurred_at) AS last_at
        FROM podmod.signals
        WHERE case_id = ANY (case_ids)
        GROUP BY case_id
    ) s
    WHERE c.id = s.case_id;
$$;
