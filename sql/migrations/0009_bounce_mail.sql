-- Bounce and complaint mail (issue 9, section 2): each SMTP account may name the IMAP
-- mailbox its bounces and feedback reports arrive in; the bounce reader keeps every report
-- it applied, once, keyed by the report's own Message-ID.

ALTER TABLE sender_accounts
    ADD COLUMN imap_host               text,
    ADD COLUMN imap_port               integer CHECK (imap_port BETWEEN 1 AND 65535),
    ADD COLUMN imap_security           text NOT NULL DEFAULT 'tls'
                                       CHECK (imap_security IN ('tls', 'starttls', 'none')),
    ADD COLUMN imap_username           text,
    ADD COLUMN imap_password_encrypted text;

-- One row per report applied (a DSN, a non-standard bounce or an ARF complaint). The
-- unique report_key (the report's Message-ID, else a hash of its bytes) makes applying a
-- report idempotent: a reader that crashed after the commit and before flagging the
-- message in the mailbox finds it here and counts nothing twice. raw keeps the report for
-- operators (mailer bounces show ID); decisions says what was done per recipient.
CREATE TABLE bounce_messages (
    id           bigserial PRIMARY KEY,
    report_key   text NOT NULL UNIQUE,
    account_id   bigint REFERENCES sender_accounts (id) ON DELETE SET NULL,
    mailbox_ref  text,
    kind         text NOT NULL CHECK (kind IN ('dsn', 'nonstandard', 'complaint')),
    subject      text,
    decisions    jsonb NOT NULL DEFAULT '[]'::jsonb,
    raw          bytea NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bounce_messages_received_idx ON bounce_messages (received_at);

-- Where the reader stopped in each account's mailbox (IMAP: "UIDVALIDITY:last UID"), so
-- mail it leaves untouched (auto-replies, unrelated mail) is not read again every poll.
CREATE TABLE bounce_mailboxes (
    account_id  bigint PRIMARY KEY REFERENCES sender_accounts (id) ON DELETE CASCADE,
    cursor      text,
    checked_at  timestamptz NOT NULL DEFAULT now(),
    last_error  text
);
