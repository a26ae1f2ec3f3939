-- Appeals (issue #15): a locked local account's statement, sent from the signed link in its notice,
-- is a signal of kind 'appeal' on the account's case, and one row here until it is decided.

ALTER TABLE podmod.signals DROP CONSTRAINT signals_kind_check;
ALTER TABLE podmod.signals ADD CONSTRAINT signals_kind_check
    CHECK (kind IN ('report', 'list', 'content', 'appeal'));

CREATE TABLE podmod.appeals (
    id bigserial PRIMARY KEY,
    case_id bigint NOT NULL REFERENCES podmod.cases (id),
    signal_id bigint NOT NULL REFERENCES podmod.signals (id),  -- the statement (signals.reason)
    person_id integer NOT NULL,              -- diaspora people.id of the locked account
    user_id integer NOT NULL,                -- its users.id (what the link names)
    account text NOT NULL,                   -- its handle
    created_at timestamptz NOT NULL DEFAULT now(),
    outcome text CHECK (outcome IN ('upheld', 'unlocked')),  -- NULL: not decided yet
    decided_at timestamptz,
    decided_by text,
    decision_event_id uuid REFERENCES podmod.events (id),  -- the decision's mail to the account
    CHECK ((outcome IS NULL) = (decided_at IS NULL))
);
-- One undecided appeal per account: a second submission waits for the first one's decision.
CREATE UNIQUE INDEX appeals_one_open_per_account ON podmod.appeals (user_id) WHERE outcome IS NULL;
CREATE INDEX appeals_by_case ON podmod.appeals (case_id);

-- The priority rule of 0009, plus 1000 for an undecided appeal (its signal not yet reviewed), which
-- puts an appealed case above every case without one (README, "Priority").
CREATE OR REPLACE FUNCTION podmod.refresh_cases(case_ids bigint[]) RETURNS void LANGUAGE sql AS $$
    UPDATE podmod.cases c SET
        report_count = s.reports,
        pending_report_count = s.pending,
        reporter_count = s.reporters,
        list_match_count = s.list_matches,
        content_match_count = s.content_matches,
        first_signal_at = s.first_at,
        last_signal_at = s.last_at,
        priority = 10 * s.pending_reporters + 2 * (s.pending - s.pending_reporters)
                   + 30 * (s.list_matches - s.silenced) + 15 * s.silenced
                   + 15 * s.content_matches + 1000 * s.open_appeals
                   + CASE WHEN c.local THEN 5 ELSE 0 END,
        updated_at = now()
    FROM (
        SELECT case_id,
               count(*) FILTER (WHERE kind = 'report') AS reports,
               count(*) FILTER (WHERE kind = 'report' AND NOT reviewed) AS pending,
               count(DISTINCT reporter_user_id) FILTER (WHERE kind = 'report') AS reporters,
               count(DISTINCT reporter_user_id) FILTER (WHERE kind = 'report' AND NOT reviewed)
                   AS pending_reporters,
               count(*) FILTER (WHERE kind = 'list' AND retracted_at IS NULL) AS list_matches,
               count(*) FILTER (WHERE kind = 'list' AND retracted_at IS NULL
                                AND details ->> 'severity' = 'silence') AS silenced,
               count(*) FILTER (WHERE kind = 'content' AND retracted_at IS NULL)
                   AS content_matches,
               count(*) FILTER (WHERE kind = 'appeal' AND NOT reviewed) AS open_appeals,
               min(occurred_at) AS first_at,
               max(occurred_at) AS last_at
        FROM podmod.signals
        WHERE case_id = ANY (case_ids)
        GROUP BY case_id
    ) s
    WHERE c.id = s.case_id;
$$;
