-- Mailer schema, version 1: the public contract of ../shared/DESIGN.md plus what the
-- engine needs (templates, workers, leases). Applied once by `mailer db migrate`.

CREATE TABLE sender_accounts (
    id                  bigserial PRIMARY KEY,
    email               text NOT NULL CHECK (position('@' IN email) > 1),
    display_name        text,
    backend             text NOT NULL DEFAULT 'smtp' CHECK (backend IN ('smtp', 'gmail')),
    status              text NOT NULL DEFAULT 'active'
                        CHECK (status IN ('active', 'paused', 'suspended', 'disabled')),
    daily_limit         integer NOT NULL DEFAULT 500 CHECK (daily_limit >= 0),
    hourly_limit        integer CHECK (hourly_limit >= 0),
    min_delay_ms        integer NOT NULL DEFAULT 1000 CHECK (min_delay_ms >= 0),
    pool                text NOT NULL DEFAULT 'default',
    smtp_host           text,
    smtp_port           integer CHECK (smtp_port BETWEEN 1 AND 65535),
    smtp_username       text,
    smtp_security       text NOT NULL DEFAULT 'starttls'
                        CHECK (smtp_security IN ('starttls', 'tls', 'none')),
    smtp_password_encrypted   text,
    gmail_credentials_encrypted text,
    last_error          text,
    -- account-level backoff after throttling or an unreachable server
    backoff_until       timestamptz,
    backoff_count       integer NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX sender_accounts_email_backend_key ON sender_accounts (lower(email), backend);

CREATE TABLE templates (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    subject     text NOT NULL,
    html_body   text,
    text_body   text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (html_body IS NOT NULL OR text_body IS NOT NULL)
);

CREATE TABLE email_queue (
    id                  bigserial PRIMARY KEY,
    to_address          text NOT NULL CHECK (btrim(to_address) <> ''),
    to_name             text,
    subject             text,
    html_body           text,
    text_body           text,
    template_id         bigint REFERENCES templates (id),
    variables           jsonb,
    headers             jsonb,
    account_id          bigint REFERENCES sender_accounts (id) ON DELETE SET NULL,
    pool                text NOT NULL DEFAULT 'default',
    campaign            text,
    priority            integer NOT NULL DEFAULT 0,
    scheduled_at        timestamptz NOT NULL DEFAULT now(),
    status              text NOT NULL DEFAULT 'queued'
                        CHECK (status IN ('queued', 'sending', 'sent', 'failed',
                                          'suppressed', 'cancelled')),
    attempts            integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts        integer NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
    next_attempt_at     timestamptz,
    last_error          text,
    message_id          text,
    sent_by_account_id  bigint REFERENCES sender_accounts (id) ON DELETE SET NULL,
    sent_at             timestamptz,
    idempotency_key     text UNIQUE,
    metadata            jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at          timestamptz NOT NULL DEFAULT now(),
    -- when the row may next be claimed: the later of its schedule and its retry time
    due_at              timestamptz GENERATED ALWAYS AS (
                            GREATEST(scheduled_at, next_attempt_at)) STORED,
    -- the lease of a claimed row: which worker holds it, for which account, until when
    locked_by           text,
    locked_account_id   bigint,
    locked_until        timestamptz,
    CHECK (subject IS NOT NULL OR template_id IS NOT NULL),
    CHECK (html_body IS NOT NULL OR text_body IS NOT NULL OR template_id IS NOT NULL),
    CHECK (variables IS NULL OR jsonb_typeof(variables) = 'object'),
    CHECK (headers IS NULL OR jsonb_typeof(headers) = 'object')
);
-- The claim reads only queued rows, in claim order, through these partial indexes.
CREATE INDEX email_queue_claim_account_idx ON email_queue (account_id, priority DESC, due_at, id)
    WHERE status = 'queued' AND account_id IS NOT NULL;
CREATE INDEX email_queue_claim_pool_idx ON email_queue (pool, priority DESC, due_at, id)
    WHERE status = 'queued' AND account_id IS NULL;
CREATE INDEX email_queue_leases_idx ON email_queue (locked_until) WHERE status = 'sending';
CREATE INDEX email_queue_message_id_idx ON email_queue (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX email_queue_status_idx ON email_queue (status);

CREATE TABLE send_logs (
    id              bigserial PRIMARY KEY,
    queue_id        bigint NOT NULL REFERENCES email_queue (id) ON DELETE CASCADE,
    account_id      bigint REFERENCES sender_accounts (id) ON DELETE SET NULL,
    -- 'unknown': the worker died holding the row; it may have gone out, so it counts
    outcome         text NOT NULL CHECK (outcome IN ('sent', 'transient', 'permanent',
                                                     'account', 'invalid', 'unknown')),
    -- true when the attempt reached the provider and so counts against the account's limits
    counted         boolean NOT NULL,
    code            integer,
    response        text,
    duration_ms     integer,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX send_logs_queue_idx ON send_logs (queue_id);
CREATE INDEX send_logs_account_window_idx ON send_logs (account_id, created_at) WHERE counted;

CREATE TABLE suppressions (
    id          bigserial PRIMARY KEY,
    email       text NOT NULL CHECK (position('@' IN email) > 1),
    reason      text NOT NULL CHECK (reason IN ('hard_bounce', 'soft_bounce', 'complaint',
                                                'unsubscribe', 'manual')),
    source      text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz
);
CREATE UNIQUE INDEX suppressions_email_key ON suppressions (lower(email));

CREATE TABLE email_events (
    id          bigserial PRIMARY KEY,
    queue_id    bigint REFERENCES email_queue (id) ON DELETE CASCADE,
    type        text NOT NULL CHECK (type IN ('open', 'click', 'unsubscribe', 'bounce',
                                              'complaint', 'delivery')),
    data        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX email_events_queue_idx ON email_events (queue_id);
CREATE INDEX email_events_type_time_idx ON email_events (type, created_at);

CREATE TABLE workers (
    id            text PRIMARY KEY,
    account_id    bigint NOT NULL,
    hostname      text NOT NULL,
    pid           integer NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now()
);

-- One NOTIFY per INSERT statement wakes idle workers; a 100,000-row COPY costs one.
CREATE FUNCTION mailer_notify_queue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('mailer_queue', '');
    RETURN NULL;
END $$;
CREATE TRIGGER email_queue_notify AFTER INSERT ON email_queue
    FOR EACH STATEMENT EXECUTE FUNCTION mailer_notify_queue();

-- An admin's UPDATE reaches workers and orchestrators at once; a poll covers a missed one.
CREATE FUNCTION mailer_account_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        NEW.updated_at := now();
    END IF;
    PERFORM pg_notify('mailer_accounts', COALESCE(NEW.id, OLD.id)::text);
    RETURN COALESCE(NEW, OLD);
END $$;
CREATE TRIGGER sender_accounts_changed BEFORE INSERT OR UPDATE ON sender_accounts
    FOR EACH ROW EXECUTE FUNCTION mailer_account_changed();
CREATE TRIGGER sender_accounts_deleted AFTER DELETE ON sender_accounts
    FOR EACH ROW EXECUTE FUNCTION mailer_account_changed();
