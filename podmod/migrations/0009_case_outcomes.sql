-- A closed case keeps its history: reporter_count counts every distinct reporter of the case's
-- reports, reviewed or not ("2 reporters" on a case closed as locked, not "0 reporters"). The
-- priority rule is unchanged: it still counts only reporters with a pending report. A case's
-- outcome stays in cases.resolution, written by the action that closed it ('locked' by Lock and
-- close; README, "Web UI").
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
                   + 15 * s.content_matches + CASE WHEN c.local THEN 5 ELSE 0 END,
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
               min(occurred_at) AS first_at,
               max(occurred_at) AS last_at
        FROM podmod.signals
        WHERE case_id = ANY (case_ids)
        GROUP BY case_id
    ) s
    WHERE c.id = s.case_id;
$$;

-- Cases closed before this migration lost their reporters: count them again (nothing else changes).
UPDATE podmod.cases c SET reporter_count = s.reporters
FROM (SELECT case_id, count(DISTINCT reporter_user_id) AS reporters FROM podmod.signals
      WHERE kind = 'report' GROUP BY case_id) s
WHERE c.id = s.case_id AND c.reporter_count <> s.reporters;
