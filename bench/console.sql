-- The console figure's data (bench/console.py): a large installation made with
-- generate_series, named blocks parsed with mailer.sql_queries.

-- console_accounts --
-- %(count)s accounts; every 50th paused with a reason.
INSERT INTO sender_accounts (email, smtp_host, smtp_port, smtp_security, daily_limit,
                             hourly_limit, min_delay_ms, status, last_error)
SELECT format('sender%%s@bench.example', i), '127.0.0.1', 1, 'none', 2000, 200, 0,
       CASE WHEN i %% 50 = 0 THEN 'paused' ELSE 'active' END,
       CASE WHEN i %% 50 = 0 THEN 'bench: paused for the figure' END
FROM generate_series(1, %(count)s) AS i

-- console_rows --
-- %(count)s rows over the last 7 days (a week of history; the last 24 h hold a seventh): 70 % sent, 10 % failed, 10 % queued, 10 % cancelled,
-- in 20 campaigns, each sent by one of the %(accounts)s accounts.
INSERT INTO email_queue (to_address, to_name, subject, html_body, status, campaign,
                         attempts, last_error, message_id, sent_by_account_id, sent_at,
                         created_at)
SELECT format('user%%s@example.org', i), format('User %%s', i), format('Offer %%s', i %% 20),
       '<p>Hello</p>',
       CASE WHEN i %% 10 < 7 THEN 'sent' WHEN i %% 10 = 7 THEN 'failed'
            WHEN i %% 10 = 8 THEN 'queued' ELSE 'cancelled' END,
       format('campaign-%%s', i %% 20), 1,
       CASE WHEN i %% 10 = 7 THEN '550 5.1.1 no such user' END,
       format('<%%s@bench.example>', i),
       CASE WHEN i %% 10 < 7 THEN 1 + i %% %(accounts)s END,
       CASE WHEN i %% 10 < 7 THEN now() - make_interval(secs => (%(count)s - i) * 604800.0 / %(count)s) END,
       now() - make_interval(secs => (%(count)s - i) * 604800.0 / %(count)s)
FROM generate_series(1, %(count)s) AS i

-- console_send_logs --
-- One attempt per sent or failed row, at its time.
INSERT INTO send_logs (queue_id, account_id, outcome, counted, code, response, duration_ms,
                       created_at)
SELECT id, COALESCE(sent_by_account_id, 1 + id %% %(accounts)s),
       CASE WHEN status = 'sent' THEN 'sent' ELSE 'permanent' END, true,
       CASE WHEN status = 'sent' THEN 250 ELSE 550 END,
       CASE WHEN status = 'sent' THEN '250 2.0.0 OK' ELSE '550 5.1.1 no such user' END,
       40, created_at
FROM email_queue WHERE status IN ('sent', 'failed')

-- console_events --
-- An open for every 10th sent row, a click for every 50th, some by bots.
INSERT INTO email_events (queue_id, type, data, suspected_bot, created_at)
SELECT id, t.type, jsonb_build_object('url', 'https://shop.example/' || (id %% 7)),
       id %% 3 = 0, sent_at
FROM email_queue
CROSS JOIN LATERAL (VALUES ('open', 10), ('click', 50)) AS t(type, every)
WHERE status = 'sent' AND id %% t.every = 0

-- console_suppressions --
INSERT INTO suppressions (email, reason, source)
SELECT format('gone%%s@example.org', i), 'hard_bounce', 'bench'
FROM generate_series(1, %(count)s) AS i

-- console_analyze --
VACUUM ANALYZE
