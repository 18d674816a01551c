-- A send in flight is marked on its row before the SMTP transaction starts: after a crash
-- only marked rows may have gone out, so only they count against the account's limits and
-- use up an attempt; rows a dead worker merely held go back untouched.
ALTER TABLE email_queue ADD COLUMN attempt_started_at timestamptz;

-- When an idle worker next has something due: the earliest due row of its account and of
-- its pool, whatever the priorities (the claim indexes order by priority first).
CREATE INDEX email_queue_due_account_idx ON email_queue (account_id, due_at)
    WHERE status = 'queued' AND account_id IS NOT NULL;
CREATE INDEX email_queue_due_pool_idx ON email_queue (pool, due_at)
    WHERE status = 'queued' AND account_id IS NULL;

-- Counting by status is an operator's occasional query; a full index on it cost every
-- INSERT and made every status change a non-HOT update.
DROP INDEX IF EXISTS email_queue_status_idx;
