-- Recurring campaigns (issue 10): a schedule may queue a whole campaign. Each occurrence
-- creates a campaign named `<base>-<occurrence in the schedule's zone, ISO to the
-- minute>` and queues its recipients, in the firing transaction. Old INSERTs keep
-- working: 'email' stays the default kind and the new column is nullable.

ALTER TABLE recurring_sends DROP CONSTRAINT recurring_sends_kind_is_known;
-- 'email': payload = one email_queue row's columns; 'campaign': payload = {name, message,
-- track_opens, track_clicks, recipients} (see mailer/recurring.py)
ALTER TABLE recurring_sends ADD CONSTRAINT recurring_sends_kind_is_known
    CHECK (kind IN ('email', 'campaign'));

-- The campaign an occurrence of a 'campaign' schedule created (NULL for 'email' ones).
ALTER TABLE recurring_runs ADD COLUMN campaign text;
