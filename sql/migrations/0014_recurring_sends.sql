-- Recurring sends (issue 10): a message queued on a cron expression in an IANA time zone,
-- by one elected scheduler (mailer/recurring_scheduler.py). Old inserts keep working: the
-- new email_queue columns are nullable.

CREATE TABLE recurring_sends (
    id            bigserial PRIMARY KEY,
    -- all digits is an id: a name must not look like one
    name          text NOT NULL
                  CONSTRAINT recurring_sends_name_unique UNIQUE
                  CONSTRAINT recurring_sends_name_not_blank_nor_all_digits
                  CHECK (btrim(name) <> '' AND length(name) <= 200 AND name !~ '^[0-9]+$'),
    -- what one occurrence queues: 'email' (payload = one email_queue row's columns);
    -- a later migration may allow 'campaign'
    kind          text NOT NULL DEFAULT 'email'
                  CONSTRAINT recurring_sends_kind_is_known CHECK (kind IN ('email')),
    cron          text NOT NULL,
    timezone      text NOT NULL,
    -- the validated request, template and account resolved (see mailer/recurring.py)
    payload       jsonb NOT NULL,
    enabled       boolean NOT NULL DEFAULT true,
    -- the next occurrence to queue; the scheduler moves it with a guarded UPDATE
    next_run_at   timestamptz NOT NULL,
    -- the occurrence last queued, and why the last one could not be (NULL once one is)
    last_run_at   timestamptz,
    last_error    text,
    -- the API key that created it (NULL: the CLI); a pool-restricted key sees only its own
    api_key_id    bigint REFERENCES api_keys (id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX recurring_sends_due_idx ON recurring_sends (next_run_at) WHERE enabled;

-- One row per occurrence queued. The unique (schedule, occurrence) is the exactly-once
-- guarantee: two schedulers (a split brain, a stale leader) can never queue one
-- occurrence twice. (`id` is the keyset of `mailer db prune`, which deletes old runs whose
-- rows are gone: next_run_at is always set after the present, so a past occurrence can
-- never be due again.)
CREATE TABLE recurring_runs (
    id             bigserial PRIMARY KEY,
    recurring_id   bigint NOT NULL REFERENCES recurring_sends (id) ON DELETE CASCADE,
    occurrence_at  timestamptz NOT NULL,
    -- how many occurrences this one stands for (missed ones collapse into the latest)
    missed         integer NOT NULL DEFAULT 1,
    queued_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT recurring_runs_one_per_occurrence UNIQUE (recurring_id, occurrence_at)
);

-- The rows an occurrence queued point at it.
ALTER TABLE email_queue
    ADD COLUMN recurring_id bigint,
    ADD COLUMN recurring_at timestamptz,
    ADD CONSTRAINT email_queue_recurring_run_fk FOREIGN KEY (recurring_id, recurring_at)
        REFERENCES recurring_runs (recurring_id, occurrence_at) ON DELETE SET NULL;
CREATE INDEX email_queue_recurring_idx ON email_queue (recurring_id, recurring_at)
    WHERE recurring_id IS NOT NULL;

-- Wake the scheduler when a schedule is added, changed or removed.
CREATE FUNCTION mailer_recurring_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('mailer_recurring', '');
    RETURN NULL;
END $$;
CREATE TRIGGER recurring_sends_notify AFTER INSERT OR UPDATE OF next_run_at, enabled OR DELETE
    ON recurring_sends FOR EACH STATEMENT EXECUTE FUNCTION mailer_recurring_notify();
