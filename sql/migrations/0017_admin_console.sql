-- The operator console (/admin): its users, their sessions, login attempts (rate limits)
-- and the audit log of every change made through it.

CREATE TABLE admin_users (
    id             bigserial PRIMARY KEY,
    email          text NOT NULL CONSTRAINT admin_users_email_has_at_sign
                       CHECK (position('@' IN email) > 1),
    -- argon2id, in the PHC string format argon2-cffi writes ($argon2id$v=19$m=...)
    password_hash  text NOT NULL CONSTRAINT admin_users_password_is_argon2id
                       CHECK (password_hash LIKE '$argon2id$%'),
    disabled_at    timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX admin_users_email_unique ON admin_users (lower(email));

-- Server-side sessions: the cookie holds a random token, only its SHA-256 is stored here.
-- A login always creates a new row (the id never survives a login: no fixation).
CREATE TABLE admin_sessions (
    token_hash     bytea PRIMARY KEY,
    user_id        bigint NOT NULL REFERENCES admin_users (id) ON DELETE CASCADE,
    csrf_token     text NOT NULL,
    ip             text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL
);
CREATE INDEX admin_sessions_user_idx ON admin_sessions (user_id);
CREATE INDEX admin_sessions_expires_idx ON admin_sessions (expires_at);

-- Every login attempt, for the per-address and per-IP rate limits.
CREATE TABLE login_attempts (
    id          bigserial PRIMARY KEY,
    email       text NOT NULL,
    ip          text NOT NULL,
    succeeded   boolean NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_attempts_email_idx ON login_attempts (lower(email), created_at);
CREATE INDEX login_attempts_ip_idx ON login_attempts (ip, created_at);

-- Who changed what through the console, with the values before and after.
CREATE TABLE admin_audit_log (
    id             bigserial PRIMARY KEY,
    admin_user_id  bigint REFERENCES admin_users (id) ON DELETE SET NULL,
    admin_email    text NOT NULL,
    action         text NOT NULL,
    target         text NOT NULL,
    before         jsonb,
    after          jsonb,
    ip             text,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX admin_audit_log_created_idx ON admin_audit_log (created_at DESC, id DESC);

-- Console message search by recipient (case-insensitive), newest first (keyset
-- pagination on id). Date filters walk the primary key from the newest row (ids grow with
-- created_at): an index on created_at measured no faster, so the queue does not pay for one.
CREATE INDEX email_queue_to_lower_idx ON email_queue (lower(to_address), id);
-- Sends per minute over 24 h (overview chart) and the live counters it polls.
CREATE INDEX send_logs_created_idx ON send_logs (created_at) WHERE counted;

-- Per account: sends counted in the last hour and day, and when the oldest of each
-- window's sends leaves it (when a limited account frees a slot); workers alive, adaptive
-- rates. Each account's counts read its own range of send_logs_account_window_idx, so a
-- filtered or limited read (the console's pages) costs only its accounts' sends.
CREATE VIEW account_usage AS
SELECT a.id, a.email, a.status, a.pool, a.daily_limit, a.hourly_limit, a.min_delay_ms,
       a.last_error, a.backoff_until, h.sent_last_hour, d.sent_last_day,
       h.first_at + interval '1 hour' AS hour_window_frees_at,
       d.first_at + interval '24 hours' AS day_window_frees_at,
       (SELECT count(*) FROM workers AS w
         WHERE w.account_id = a.id AND w.heartbeat_at > now() - interval '30 seconds')
           AS live_workers,
       (SELECT r.per_minute FROM send_rates AS r
         WHERE r.account_id = a.id AND r.destination = '') AS rate_per_minute,
       (SELECT jsonb_object_agg(r.destination, round(r.per_minute::numeric, 1))
          FROM send_rates AS r
         WHERE r.account_id = a.id AND r.destination <> '') AS destination_rates
FROM sender_accounts AS a
CROSS JOIN LATERAL (
    SELECT count(*) AS sent_last_day, min(l.created_at) AS first_at FROM send_logs AS l
    WHERE l.account_id = a.id AND l.counted AND l.created_at > now() - interval '24 hours'
) AS d
CROSS JOIN LATERAL (
    SELECT count(*) AS sent_last_hour, min(l.created_at) AS first_at FROM send_logs AS l
    WHERE l.account_id = a.id AND l.counted AND l.created_at > now() - interval '1 hour'
) AS h;
