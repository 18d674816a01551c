-- Mailer schema, version 10: outbound event webhooks (Standard Webhooks), see
-- mailer/webhooks_out.py (endpoints) and mailer/webhook_sender.py (deliveries).
-- Every old INSERT and UPDATE keeps working: only new tables and AFTER triggers.

-- Where events go. The signing secret is stored encrypted (CredentialBox), shown once.
CREATE TABLE webhook_endpoints (
    id                bigserial PRIMARY KEY,
    url               text NOT NULL CHECK (url ~* '^https?://[^/?#]+'),
    events            text[] NOT NULL CHECK (
                          cardinality(events) > 0
                          AND events <@ ARRAY['sent', 'failed', 'delivered', 'bounced',
                                              'complained', 'opened', 'clicked',
                                              'unsubscribed']::text[]),
    secret_encrypted  text NOT NULL,
    enabled           boolean NOT NULL DEFAULT true,
    -- set by the sender after a day of continuous failure (or NULL while enabled)
    disabled_reason   text,
    disabled_at       timestamptz,
    -- when the current run of failed attempts began; NULL after any success
    failing_since     timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- One event for one endpoint. `webhook_id` is the Standard Webhooks `webhook-id`: the
-- same on every attempt, so receivers de-duplicate on it. The payload is built when the
-- event happens (in the transaction that causes it) and never changes.
CREATE TABLE webhook_deliveries (
    id               bigserial PRIMARY KEY,
    webhook_id       text NOT NULL UNIQUE
                     DEFAULT 'msg_' || replace(gen_random_uuid()::text, '-', ''),
    endpoint_id      bigint NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_type       text NOT NULL,
    payload          jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at, id)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id);

-- Every attempt: HTTP status (NULL when none came back), latency, response excerpt.
CREATE TABLE webhook_attempts (
    id                bigserial PRIMARY KEY,
    delivery_id       bigint NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    endpoint_id       bigint NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    status_code       integer,
    error             text,
    latency_ms        integer,
    response_excerpt  text,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id);
CREATE INDEX webhook_attempts_endpoint_idx ON webhook_attempts (endpoint_id, created_at);

-- Queue one delivery of event `p_event` about queue row `p_queue_id` per enabled endpoint
-- subscribed to it. With no such endpoint it is one lookup in a (tiny) table and returns.
CREATE FUNCTION mailer_webhook_enqueue(
    p_event text, p_queue_id bigint, p_account_id bigint, p_at timestamptz, p_details jsonb
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    targets bigint[];
    body jsonb;
BEGIN
    targets := ARRAY(SELECT id FROM webhook_endpoints WHERE enabled AND p_event = ANY (events));
    IF cardinality(targets) = 0 THEN
        RETURN;
    END IF;
    SELECT jsonb_build_object(
               'type', 'email.' || p_event,
               'timestamp', to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               'data', jsonb_build_object(
                   'email_id', p_queue_id,
                   'message_id', q.message_id,
                   'to', q.to_address,
                   'campaign', q.campaign,
                   'metadata', COALESCE(q.metadata, '{}'::jsonb),
                   'account', CASE WHEN a.id IS NULL THEN NULL
                                   ELSE jsonb_build_object('id', a.id, 'email', a.email) END
               ) || p_details)
    INTO body
    FROM (SELECT 1) AS one
    LEFT JOIN email_queue AS q ON q.id = p_queue_id
    LEFT JOIN sender_accounts AS a ON a.id = COALESCE(p_account_id, q.sent_by_account_id);
    INSERT INTO webhook_deliveries (endpoint_id, event_type, payload)
    SELECT t, p_event, body FROM unnest(targets) AS t;
END $$;

-- A row became sent or failed (the worker's record_results, or anyone's UPDATE).
CREATE FUNCTION mailer_webhook_queue_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM mailer_webhook_enqueue(
        NEW.status, NEW.id, NEW.sent_by_account_id, COALESCE(NEW.sent_at, now()),
        CASE WHEN NEW.status = 'failed'
             THEN jsonb_build_object('error', NEW.last_error, 'attempts', NEW.attempts)
             ELSE jsonb_build_object('sent_at', NEW.sent_at) END);
    RETURN NULL;
END $$;
CREATE TRIGGER email_queue_webhooks AFTER UPDATE OF status ON email_queue
    FOR EACH ROW WHEN (NEW.status IN ('sent', 'failed') AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION mailer_webhook_queue_status();

-- An event about a message: open, click, unsubscribe, bounce, complaint, delivery.
CREATE FUNCTION mailer_webhook_email_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM mailer_webhook_enqueue(
        CASE NEW.type WHEN 'open' THEN 'opened' WHEN 'click' THEN 'clicked'
                      WHEN 'unsubscribe' THEN 'unsubscribed' WHEN 'bounce' THEN 'bounced'
                      WHEN 'complaint' THEN 'complained' WHEN 'delivery' THEN 'delivered'
                      ELSE NEW.type END,
        NEW.queue_id, NEW.account_id, NEW.created_at,
        jsonb_build_object('event_id', NEW.id, 'suspected_bot', NEW.suspected_bot,
                           'details', NEW.data - 'raw'));
    RETURN NULL;
END $$;
CREATE TRIGGER email_events_webhooks AFTER INSERT ON email_events
    FOR EACH ROW EXECUTE FUNCTION mailer_webhook_email_event();
