-- Gmail accounts and DKIM keys (issue 9, sections 1 and 3).
-- sender_accounts.gmail_credentials_encrypted exists since 0001; the Google Cloud project
-- (a service account's project_id, an OAuth client's id) is kept beside it in clear, so
-- a project-wide quota error can back off every Gmail account of that project. Old
-- INSERTs keep working: the new column is nullable.
ALTER TABLE sender_accounts ADD COLUMN gmail_project text;
CREATE INDEX sender_accounts_gmail_project ON sender_accounts (gmail_project)
    WHERE gmail_project IS NOT NULL;

-- One DKIM key per sending domain; the private key is encrypted like credentials.
CREATE TABLE dkim_keys (
    domain                 text PRIMARY KEY CHECK (domain = lower(domain) AND domain <> ''),
    selector               text NOT NULL CHECK (selector ~ '^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$'),
    algorithm              text NOT NULL CHECK (algorithm IN ('rsa-sha256', 'ed25519-sha256')),
    private_key_encrypted  text NOT NULL,
    public_key             text NOT NULL,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);
