-- Personal data (issue 10): what is left of an erased address, and the audit of every
-- export and erasure (see mailer/contacts.py); then webhook leftovers (below). Every old
-- INSERT and UPDATE keeps working: new tables and functions, a wider event list.

-- The identity of an address once its plaintext is gone: SHA-256 (hex) of the trimmed,
-- lowercased address. Unkeyed on purpose: the claim and the mark compute it in SQL for
-- every row (no secret to pass in, and rotating MAILER_SECRET_KEY cannot unblock anyone).
-- Whoever can read the database can test a guessed address against it, no more.
CREATE FUNCTION mailer_email_hash(p_email text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT encode(sha256(convert_to(lower(btrim(p_email)), 'UTF8')), 'hex')
$$;

-- ``p_text`` with every occurrence of ``p_address`` (any case) replaced by [erased].
CREATE FUNCTION mailer_scrub_address(p_text text, p_address text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT regexp_replace(
        p_text, regexp_replace(p_address, '([^[:alnum:]])', '\\\1', 'g'), '[erased]', 'gi')
$$;

-- Addresses erased with `mailer contacts erase` / DELETE /api/v1/contacts/{email}: never
-- sent to again. The claim flags their rows (suppression reason 'erased') and the mark
-- that precedes every send refuses them, like a suppression.
CREATE TABLE erased_contacts (
    email_hash  text PRIMARY KEY CONSTRAINT erased_contacts_email_hash_is_sha256_hex CHECK (email_hash ~ '^[0-9a-f]{64}$'),
    erased_at   timestamptz NOT NULL DEFAULT now()
);

-- One row per export or erasure: who (an API key as 'api-key:<id>', or 'cli:<user>'), of
-- which address (its hash only), what was found or changed (counts per table), when.
CREATE TABLE contact_audit (
    id          bigserial PRIMARY KEY,
    action      text NOT NULL CONSTRAINT contact_audit_action_is_known CHECK (action IN ('export', 'erase')),
    email_hash  text NOT NULL,
    actor       text NOT NULL,
    counts      jsonb NOT NULL DEFAULT '{}'::jsonb,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX contact_audit_hash_idx ON contact_audit (email_hash, at);

-- Erased rows keep this placeholder address: erased too, so a row retried by mistake
-- ends suppressed instead of going anywhere.
INSERT INTO erased_contacts (email_hash) VALUES (mailer_email_hash('erased@erased.invalid'));

-- Webhook leftovers (issue 10). Rows that end `suppressed` or `cancelled` produce events
-- too (`email.suppressed`, `email.cancelled`, with the reason), and every queued delivery
-- wakes the webhook sender at once (NOTIFY mailer_webhooks, one per transaction however
-- many events it queues) instead of at its next poll.
ALTER TABLE webhook_endpoints DROP CONSTRAINT webhook_endpoints_events_check;
ALTER TABLE webhook_endpoints ADD CONSTRAINT webhook_endpoints_events_check CHECK (
    cardinality(events) > 0
    AND events <@ ARRAY['sent', 'failed', 'delivered', 'bounced', 'complained', 'opened',
                        'clicked', 'unsubscribed', 'suppressed', 'cancelled']::text[]);

CREATE FUNCTION mailer_notify_webhooks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('mailer_webhooks', '');
    RETURN NULL;
END $$;
CREATE TRIGGER webhook_deliveries_notify AFTER INSERT ON webhook_deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION mailer_notify_webhooks();

CREATE OR REPLACE FUNCTION mailer_webhook_queue_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM mailer_webhook_enqueue(
        NEW.status, NEW.id, NEW.sent_by_account_id, COALESCE(NEW.sent_at, now()),
        CASE WHEN NEW.status = 'sent' THEN jsonb_build_object('sent_at', NEW.sent_at)
             WHEN NEW.status = 'failed'
             THEN jsonb_build_object('error', NEW.last_error, 'attempts', NEW.attempts)
             ELSE jsonb_build_object('reason', NEW.last_error) END);
    RETURN NULL;
END $$;

DROP TRIGGER email_queue_webhooks ON email_queue;
CREATE TRIGGER email_queue_webhooks AFTER UPDATE OF status ON email_queue
    FOR EACH ROW WHEN (NEW.status IN ('sent', 'failed', 'suppressed', 'cancelled')
                       AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION mailer_webhook_queue_status();
