-- Mailer schema, version 2: tracking, unsubscribes, webhook intake and the reputation
-- guard. Every old INSERT keeps working: new columns are nullable or have defaults.

-- Bulk (the default) or transactional mail, and per-row tracking switches.
-- track_opens / track_clicks: NULL = the campaign's setting, else on for bulk mail and off
-- for transactional mail; true/false force it for the row.
ALTER TABLE email_queue
    ADD COLUMN transactional boolean NOT NULL DEFAULT false,
    ADD COLUMN track_opens   boolean,
    ADD COLUMN track_clicks  boolean;

-- Per-campaign tracking switches (rows of email_queue.campaign); NULL = the default.
CREATE TABLE campaign_settings (
    campaign     text PRIMARY KEY,
    track_opens  boolean,
    track_clicks boolean,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Which account sent the message an event is about (for per-account reputation and
-- metrics), and whether an open/click looks like a security scanner or link prefetcher
-- (recorded, but left out of engagement figures; data->>'scanner' says why).
ALTER TABLE email_events
    ADD COLUMN account_id    bigint REFERENCES sender_accounts (id) ON DELETE SET NULL,
    ADD COLUMN suspected_bot boolean NOT NULL DEFAULT false;
CREATE INDEX email_events_account_type_time_idx ON email_events (account_id, type, created_at)
    WHERE account_id IS NOT NULL;

-- The reputation guard only judges sends and events after this moment: set whenever the
-- account becomes active again (an admin resuming it after a reputation pause).
ALTER TABLE sender_accounts ADD COLUMN reputation_since timestamptz;

CREATE FUNCTION mailer_account_reactivated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.reputation_since := now();
    RETURN NEW;
END $$;
CREATE TRIGGER sender_accounts_reactivated BEFORE UPDATE OF status ON sender_accounts
    FOR EACH ROW WHEN (NEW.status = 'active' AND OLD.status IS DISTINCT FROM 'active')
    EXECUTE FUNCTION mailer_account_reactivated();

-- Things that happened to an account (not to a message): an automatic reputation pause.
CREATE TABLE account_events (
    id          bigserial PRIMARY KEY,
    account_id  bigint NOT NULL REFERENCES sender_accounts (id) ON DELETE CASCADE,
    type        text NOT NULL CHECK (type IN ('reputation_pause')),
    data        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX account_events_account_idx ON account_events (account_id, created_at);

-- SNS messages already processed, by MessageId: SNS redelivers, attackers replay.
CREATE TABLE sns_messages (
    message_id   text PRIMARY KEY,
    topic_arn    text NOT NULL,
    type         text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sns_messages_received_idx ON sns_messages (received_at);
