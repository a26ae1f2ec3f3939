-- The outbox as a kind of durable work (podmod.durable, podmod.notify.carry): the reader enqueues
-- a job for each row due and not done, a worker delivers it. done_at is set in the same UPDATE as
-- delivered_at or gave_up_at. The Kind's count of enqueues is `enqueues`, apart from the outbox's
-- own `attempts` (sends, which set the pause before the next one).
ALTER TABLE podmod.outbox
    ADD COLUMN enqueued_at timestamptz,
    ADD COLUMN enqueues integer NOT NULL DEFAULT 0,
    ADD COLUMN done_at timestamptz,
    -- the start of the day a failing row is retried for: created_at, or a "Retry now" on it
    ADD COLUMN retrying_since timestamptz;
UPDATE podmod.outbox SET retrying_since = created_at,
    done_at = coalesce(delivered_at, gave_up_at);
ALTER TABLE podmod.outbox ALTER COLUMN retrying_since SET NOT NULL,
    ALTER COLUMN retrying_since SET DEFAULT now();
CREATE INDEX outbox_undone ON podmod.outbox (id) WHERE done_at IS NULL;
