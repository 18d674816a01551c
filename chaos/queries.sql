-- The chaos harness's own statements, as named blocks (parsed with mailer.sql_queries).
-- Admin actions are the plain SQL an operator would type.

-- insert_account --
INSERT INTO sender_accounts (email, display_name, smtp_host, smtp_port, smtp_security,
                             daily_limit, hourly_limit, min_delay_ms)
VALUES (%(email)s, %(email)s, %(host)s, %(port)s, 'none',
        %(daily_limit)s, %(hourly_limit)s, %(min_delay_ms)s)
RETURNING id

-- insert_row --
INSERT INTO email_queue (to_address, subject, html_body, text_body, account_id,
                         scheduled_at, max_attempts, campaign)
VALUES (%(to_address)s, %(subject)s, '<p>Chaos</p>', 'Chaos', %(account_id)s,
        now() + make_interval(secs => %(due_in)s), 8, 'chaos')

-- account_limits --
SELECT daily_limit, hourly_limit, min_delay_ms, status FROM sender_accounts WHERE id = %(id)s

-- set_limits --
UPDATE sender_accounts
SET daily_limit = COALESCE(%(daily_limit)s, daily_limit),
    hourly_limit = COALESCE(%(hourly_limit)s, hourly_limit),
    min_delay_ms = COALESCE(%(min_delay_ms)s, min_delay_ms)
WHERE id = %(id)s

-- pause_account --
UPDATE sender_accounts SET status = 'paused' WHERE id = %(id)s AND status = 'active'
RETURNING id

-- resume_account --
UPDATE sender_accounts SET status = 'active' WHERE id = %(id)s AND status = 'paused'
RETURNING id

-- suppress --
INSERT INTO suppressions (email, reason, source) VALUES (%(email)s, 'manual', 'chaos')
ON CONFLICT ((lower(email))) DO NOTHING

-- snapshot_rows --
SELECT id, status, to_address, account_id, pool, message_id,
       extract(epoch FROM due_at)::float8 AS due_at
FROM email_queue ORDER BY id

-- snapshot_attempts --
SELECT queue_id, account_id, outcome, counted, COALESCE(response, '') AS response,
       extract(epoch FROM created_at)::float8 AS created_at
FROM send_logs ORDER BY id

-- snapshot_accounts --
SELECT id, email, pool, status, daily_limit, hourly_limit, min_delay_ms
FROM sender_accounts ORDER BY id
