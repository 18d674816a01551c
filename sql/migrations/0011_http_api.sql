-- The HTTP API (issue 10): API keys, the Idempotency-Key store, per-key request windows,
-- and the submitting key on each queued row. Old inserts keep working: the new column is
-- nullable and rows inserted by SQL have no key.
-- (0010 is reserved for another engineer's migration of the same issue.)

CREATE TABLE api_keys (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL CHECK (btrim(name) <> ''),
    -- the visible part of the key ("mk_" + 8 characters), shown by `api-keys list`
    prefix          text NOT NULL UNIQUE,
    -- SHA-256 of the whole key, hex: the key itself is never stored
    key_hash        text NOT NULL,
    scope           text NOT NULL CHECK (scope IN ('send', 'read', 'admin')),
    -- empty = any pool; else the key sends only through these pools and sees only its rows
    pools           text[] NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz,
    revoked_at      timestamptz
);

ALTER TABLE email_queue
    ADD COLUMN api_key_id bigint REFERENCES api_keys (id) ON DELETE SET NULL;
CREATE INDEX email_queue_api_key_idx ON email_queue (api_key_id, id) WHERE api_key_id IS NOT NULL;
-- keyset pagination of GET /emails walks ids newest first
CREATE INDEX email_queue_campaign_id_idx ON email_queue (campaign, id) WHERE campaign IS NOT NULL;

-- One row per (key, Idempotency-Key): the request's hash while it runs, then its response.
CREATE TABLE api_idempotency (
    api_key_id      bigint NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    idem_key        text NOT NULL,
    request_hash    text NOT NULL,
    status_code     integer,
    response_body   text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (api_key_id, idem_key)
);
CREATE INDEX api_idempotency_created_idx ON api_idempotency (created_at);

-- Request counts per key and fixed one-minute window, shared by every web process.
CREATE TABLE api_rate_windows (
    api_key_id      bigint NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    window_start    timestamptz NOT NULL,
    requests        integer NOT NULL,
    PRIMARY KEY (api_key_id, window_start)
);
