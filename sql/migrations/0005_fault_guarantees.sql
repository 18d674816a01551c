-- Guarantees under faults (issue 7). Old inserts keep working: new columns have defaults
-- or are nullable.

-- Times a worker died while preparing this row, before it was marked in flight (read
-- from the dead worker's outcome journal). A row that kills every worker that renders it
-- fails once this reaches MAILER_POISON_THRESHOLD, instead of taking its pool down.
ALTER TABLE email_queue ADD COLUMN worker_crashes integer NOT NULL DEFAULT 0
    CHECK (worker_crashes >= 0);

-- One id per attempt, written by the worker and kept in its outcome journal: replaying a
-- journal after a crash never logs (or counts) the same attempt twice.
ALTER TABLE send_logs ADD COLUMN attempt_id uuid;
CREATE UNIQUE INDEX send_logs_attempt_id_key ON send_logs (attempt_id)
    WHERE attempt_id IS NOT NULL;

-- Rows leased by workers, by account: recovery and the limit window read them per account.
CREATE INDEX email_queue_leased_account_idx ON email_queue (locked_account_id)
    WHERE status = 'sending';
