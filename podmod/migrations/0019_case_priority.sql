-- The priority rule of 0014 (README, "Priority") in one function, which refresh_cases() uses and a
-- list sync uses too: the cases it opens for people newly matched are written with their counts
-- and priority at once, not inserted and then updated (an update of every new case rewrites each
-- of its dozen indexes: 8 s of a sync that opens 300,000 cases). A SQL function this simple is
-- inlined into the statements that call it.
CREATE FUNCTION podmod.case_priority(
    pending_reporters bigint, pending bigint, list_matches bigint, silenced bigint,
    content_matches bigint, open_appeals bigint, local boolean
) RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (10 * pending_reporters + 2 * (pending - pending_reporters)
            + 30 * (list_matches - silenced) + 15 * silenced
            + 15 * content_matches + 1000 * open_appeals
            + CASE WHEN local THEN 5 ELSE 0 END)::integer
$$;

CREATE OR REPLACE FUNCTION podmod.refresh_cases(case_ids bigint[]) RETURNS void LANGUAGE sql AS $$
    UPDATE podmod.cases c SET
        report_count = s.reports,
        pending_report_count = s.pending,
        reporter_count = s.reporters,
        list_match_count = s.list_matches,
        content_match_count = s.content_matches,
        first_signal_at = s.first_at,
        last_signal_at = s.last_at,
        priority = podmod.case_priority(s.pending_reporters, s.pending, s.list_matches, s.silenced,
                                        s.content_matches, s.open_appeals, c.local),
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
