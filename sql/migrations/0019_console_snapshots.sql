-- The console's figures at 1,000,000 rows (issue 11: every page under 200 ms).
--
-- One index serves the searches and counts by campaign and state: the message search
-- filtered by campaign and state walks only the matching rows, newest first, and a
-- campaign's rows by state (with when each was sent, INCLUDE) are counted by an
-- index-only scan instead of reading every row of the campaign. Rows without a
-- campaign pay nothing; rows with one pay one more index entry per status change (those
-- updates are never HOT anyway: status is in the claim indexes' predicates).
CREATE INDEX email_queue_campaign_status_idx ON email_queue (campaign, status, id)
    INCLUDE (sent_at) WHERE campaign IS NOT NULL;

-- Figures too costly to count on every page view at that size (rows in finished states,
-- every campaign's rows by state), saved by the web app (mailer/console_snapshots.py) and
-- shown with their age. A refresh runs in the background under an advisory lock, so one
-- runs at a time and no page waits for it; the worker's queries never touch this table.
CREATE TABLE console_snapshots (
    name text CONSTRAINT console_snapshots_pkey PRIMARY KEY,
    figures jsonb NOT NULL,
    refreshed_at timestamptz NOT NULL DEFAULT now(),
    refresh_ms double precision NOT NULL DEFAULT 0
        CONSTRAINT console_snapshots_refresh_ms_not_negative CHECK (refresh_ms >= 0)
);
