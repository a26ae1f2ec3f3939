-- The web UI: TOTP replay guard, and indexes for the queue's keyset pages, its filters and search,
-- the audit log's pages and the dashboard.

-- The last TOTP time step accepted per pod user. podmod may not write users.consumed_timestep, so
-- it keeps its own: a code is accepted only for a step above this one (and above diaspora*'s).
CREATE TABLE podmod.web_otp_steps (
    user_id integer PRIMARY KEY,             -- diaspora users.id
    last_timestep bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The queue's order (priority DESC, last_signal_at DESC NULLS LAST, id DESC) as one ascending key,
-- so that a page after (priority, sort_at, id) is a row comparison the index answers (scanned
-- backwards), with no OFFSET and no sort. '-infinity' puts cases without signals last.
CREATE INDEX cases_keyset ON podmod.cases
    (status, priority, coalesce(last_signal_at, '-infinity'::timestamptz), id);
CREATE INDEX cases_keyset_local ON podmod.cases
    (status, local, priority, coalesce(last_signal_at, '-infinity'::timestamptz), id);
CREATE INDEX cases_keyset_listed ON podmod.cases
    (status, priority, coalesce(last_signal_at, '-infinity'::timestamptz), id)
    WHERE list_match_count > 0;
CREATE INDEX cases_keyset_all ON podmod.cases
    (priority, coalesce(last_signal_at, '-infinity'::timestamptz), id);
-- Search by handle prefix ("alice", "alice@pod.ex").
CREATE INDEX cases_account_prefix ON podmod.cases (account text_pattern_ops);

-- The audit log's pages, newest first, as one ascending key too.
CREATE INDEX audit_keyset ON podmod.audit (at, id);

-- The dashboard: reports per day, list matches per day.
CREATE INDEX signals_reports_by_time ON podmod.signals (occurred_at) WHERE kind = 'report';
CREATE INDEX signals_lists_by_time ON podmod.signals (created_at) WHERE kind = 'list';
CREATE INDEX decisions_by_time ON podmod.decisions (created_at);
CREATE INDEX cases_by_created ON podmod.cases (created_at);
