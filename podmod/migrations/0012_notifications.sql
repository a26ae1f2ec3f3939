-- Notifications (podmod.notify): what podmod tells, written in the transaction of the decision that
-- causes it, and delivered from the outbox exactly once (README, "Notifications").

-- One row per thing that happened that someone may be told of.
CREATE TABLE podmod.events (
    id uuid PRIMARY KEY,
    type text NOT NULL,                      -- case.alert, account.locked, list.held, ...
    key text UNIQUE,                         -- what makes it happen once, where the caller's
                                             -- transaction alone does not (list.failing)
    case_id bigint,
    account text,
    list_name text,
    facts jsonb NOT NULL DEFAULT '{}',       -- never reported content
    staff_mail boolean NOT NULL DEFAULT false,  -- goes into the staff's next mail
    digest_id bigint,                        -- the staff mail that carried it; NULL: still waiting
    tell_user_id integer,                    -- users.id of a local account told of it by mail
    told_at timestamptz,                     -- when its mail was written to the outbox
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_waiting_for_staff_mail ON podmod.events (created_at)
    WHERE staff_mail AND digest_id IS NULL;
CREATE INDEX events_waiting_for_account_mail ON podmod.events (created_at)
    WHERE tell_user_id IS NOT NULL AND told_at IS NULL;

-- One staff mail (to each recipient) carrying every event waiting for it: alerts.digest_minutes
-- apart at least.
CREATE TABLE podmod.digests (
    id bigserial PRIMARY KEY,
    events integer NOT NULL,
    recipients integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX digests_by_time ON podmod.digests (created_at DESC);

-- One row per delivery: a mail to one address, or a webhook POST to one receiver.
CREATE TABLE podmod.outbox (
    id bigserial PRIMARY KEY,
    channel text NOT NULL CHECK (channel IN ('mail', 'webhook')),
    target text NOT NULL,                    -- the address, or the webhook's URL
    event_type text NOT NULL,                -- the event's type, or 'digest' for a staff mail
    event_id uuid REFERENCES podmod.events (id),
    digest_id bigint REFERENCES podmod.digests (id),
    language text,                           -- of a mail: the recipient's users.language
    payload jsonb NOT NULL,                  -- what the mail or webhook body is made of
    message_id text,                         -- of a mail: the same on every attempt
    created_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_attempt_at timestamptz,
    delivered_at timestamptz,
    gave_up_at timestamptz,                  -- retried for a day without success
    last_error text,                         -- one sentence; kept after a later success
    last_error_at timestamptz,
    response_status integer,                 -- of a webhook: the receiver's HTTP status
    CHECK (event_id IS NOT NULL OR digest_id IS NOT NULL)
);
CREATE INDEX outbox_due ON podmod.outbox (next_attempt_at, id)
    WHERE delivered_at IS NULL AND gave_up_at IS NULL;
CREATE INDEX outbox_recent ON podmod.outbox (created_at DESC, id DESC);
CREATE INDEX outbox_failures ON podmod.outbox (last_error_at DESC)
    WHERE last_error_at IS NOT NULL;

-- The priority a case last alerted the staff at: it alerts again only above it.
CREATE TABLE podmod.case_alerts (
    case_id bigint PRIMARY KEY REFERENCES podmod.cases (id),
    priority integer NOT NULL,
    alerted_at timestamptz NOT NULL DEFAULT now()
);
