-- Issue 8: SMTP replies handled like a production MTA.
-- Per-account EHLO name and TLS trust (old INSERTs keep working: all optional, and
-- verification stays on by default).
ALTER TABLE sender_accounts
    ADD COLUMN ehlo_hostname text
        CHECK (ehlo_hostname IS NULL OR ehlo_hostname ~ '^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)$'),
    ADD COLUMN smtp_tls_ca_file text,
    ADD COLUMN smtp_tls_verify boolean NOT NULL DEFAULT true;

-- Adaptive sending rates (additive increase, multiplicative decrease): one row per account
-- and destination ('' = the account as a whole; else a destination group such as 'gmail',
-- 'microsoft', 'yahoo', or a recipient domain) whose rate a throttle reply lowered. No row
-- means the configured limits alone apply. Written by the worker, read by `mailer status`.
CREATE TABLE send_rates (
    account_id   bigint NOT NULL REFERENCES sender_accounts (id) ON DELETE CASCADE,
    destination  text NOT NULL DEFAULT '',
    per_minute   double precision NOT NULL CHECK (per_minute > 0),
    release_at   double precision CHECK (release_at > 0),
    reason       text,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, destination)
);
