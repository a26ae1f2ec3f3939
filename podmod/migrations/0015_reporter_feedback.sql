-- Reporter feedback (podmod.notify.reporters, README "Notifications"): a local reporter whose
-- reports on a case are all decided is told the outcome once, unless they opted out.

-- One row per (case, reporter) told, or deliberately not told, of a decision on their reports.
-- A case reopened and decided again tells a reporter only of reports not covered by a notice yet.
CREATE TABLE podmod.reporter_notices (
    id bigserial PRIMARY KEY,
    case_id bigint NOT NULL REFERENCES podmod.cases (id),
    reporter_user_id integer NOT NULL,       -- diaspora users.id of the reporter
    outcome text NOT NULL CHECK (outcome IN ('locked', 'no_action')),
    result text NOT NULL CHECK (result IN (
        'mailed',                            -- its mail is in the outbox
        'opted_out',                         -- the reporter opted out: no mail
        'no_address',                        -- the reporter has no usable address, or is gone
        'before'                             -- decided before notify.reporters was on: no mail
    )),
    reports integer NOT NULL,                -- how many of the reporter's reports it covers
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reporter_notices_by_case ON podmod.reporter_notices (case_id);

-- The notice that covered a report signal; NULL while the reporter is still to be told of it.
ALTER TABLE podmod.signals ADD COLUMN reporter_notice_id bigint
    REFERENCES podmod.reporter_notices (id);
CREATE INDEX signals_reports_untold ON podmod.signals (case_id)
    WHERE kind = 'report' AND reporter_notice_id IS NULL;

-- When notify.reporters was switched on (the first pass that ran with it): decisions older than
-- this are never mailed. The row goes when a pass runs with the setting off.
CREATE TABLE podmod.reporter_feedback (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    since timestamptz NOT NULL DEFAULT now()
);

-- Reporters who asked, through the link in a mail, to hear no more of their reports.
CREATE TABLE podmod.reporter_opt_outs (
    user_id integer PRIMARY KEY,             -- diaspora users.id
    opted_out_at timestamptz NOT NULL DEFAULT now()
);

-- A reporter's mail is the outbox row of its notice.
ALTER TABLE podmod.outbox ADD COLUMN reporter_notice_id bigint
    REFERENCES podmod.reporter_notices (id);
ALTER TABLE podmod.outbox DROP CONSTRAINT outbox_check;
ALTER TABLE podmod.outbox ADD CONSTRAINT outbox_source
    CHECK (event_id IS NOT NULL OR digest_id IS NOT NULL OR reporter_notice_id IS NOT NULL);
