-- The benchmark's own statements, as named blocks (parsed with mailer.sql_queries).
-- Mailer's engine statements (claim_batch, ...) come from sql/queries.sql unchanged.

-- server_facts --
SELECT version() AS version, current_setting('max_connections') AS max_connections,
       current_setting('shared_buffers') AS shared_buffers,
       current_setting('synchronous_commit') AS synchronous_commit

-- show_setting --
SELECT current_setting(%(name)s) AS value

-- alter_system --
-- Formatted with psycopg.sql (ALTER SYSTEM takes no bind parameters).
ALTER SYSTEM SET {name} = {value}

-- drop_database --
DROP DATABASE IF EXISTS mailer_bench WITH (FORCE)

-- create_database --
CREATE DATABASE mailer_bench

-- insert_accounts --
-- ``count`` active SMTP accounts on the sink, limits out of the way.
INSERT INTO sender_accounts (email, display_name, smtp_host, smtp_port, smtp_security,
                             daily_limit, hourly_limit, min_delay_ms, pool)
SELECT format('sender%%s-%%s@bench.example', %(pool)s::text, i), format('Bench %%s', i),
       %(host)s, %(port)s, 'none', %(daily_limit)s, NULL, %(min_delay_ms)s, %(pool)s
FROM generate_series(1, %(count)s) AS i
RETURNING id

-- insert_rows --
-- ``count`` ready rows in one multi-row INSERT, as another system would queue them.
INSERT INTO email_queue (to_address, to_name, subject, html_body, text_body, pool, campaign)
SELECT format('user%%s@example.org', i), format('User %%s', i),
       format('Benchmark message %%s', i), %(html)s, %(text)s, %(pool)s, 'bench'
FROM generate_series(1, %(count)s) AS i

-- insert_one --
INSERT INTO email_queue (to_address, subject, html_body, text_body, pool)
VALUES (%(to_address)s, %(subject)s, %(html)s, %(text)s, %(pool)s)
RETURNING id

-- row_sent_at --
SELECT sent_at, status FROM email_queue WHERE id = %(id)s

-- unsettled_count --
-- Whether any row is still to send (1) or not (0), polled many times a second while
-- Mailer sends: three probes of partial indexes, not a scan of the table (a count(*)
-- of a 30,000-row queue ten times a second was PostgreSQL CPU charged to Mailer).
SELECT (EXISTS (SELECT 1 FROM email_queue WHERE status = 'queued' AND account_id IS NULL)
        OR EXISTS (SELECT 1 FROM email_queue WHERE status = 'queued' AND account_id IS NOT NULL)
        OR EXISTS (SELECT 1 FROM email_queue WHERE status = 'sending'))::int AS n

-- settled_summary --
SELECT count(*) FILTER (WHERE status = 'sent') AS sent,
       count(*) FILTER (WHERE status <> 'sent') AS other,
       min(sent_at) AS first_sent, max(sent_at) AS last_sent,
       (SELECT count(*) FROM send_logs) AS logs
FROM email_queue

-- live_workers --
SELECT count(*) AS n FROM workers

-- connections --
SELECT count(*) AS n FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()

-- truncate_queue --
TRUNCATE email_queue, send_logs, email_events RESTART IDENTITY

-- checkpoint --
CHECKPOINT

-- bare_table --
-- The same columns as email_queue, without defaults, constraints, indexes or triggers.
CREATE TABLE IF NOT EXISTS bench_bare (
    id bigint, to_address text, to_name text, subject text, html_body text, text_body text,
    template_id bigint, variables jsonb, headers jsonb, account_id bigint, pool text,
    campaign text, priority integer, scheduled_at timestamptz, status text, attempts integer,
    max_attempts integer, next_attempt_at timestamptz, last_error text, message_id text,
    sent_by_account_id bigint, sent_at timestamptz, idempotency_key text, metadata jsonb,
    created_at timestamptz, due_at timestamptz, locked_by text, locked_account_id bigint,
    locked_until timestamptz
)

-- truncate_bare --
TRUNCATE bench_bare

-- insert_unnest_queue --
INSERT INTO email_queue (to_address, to_name, subject, html_body, text_body, campaign)
SELECT * FROM unnest(%(to_address)s::text[], %(to_name)s::text[], %(subject)s::text[],
                     %(html)s::text[], %(text)s::text[], %(campaign)s::text[])

-- insert_unnest_bare --
INSERT INTO bench_bare (to_address, to_name, subject, html_body, text_body, campaign)
SELECT * FROM unnest(%(to_address)s::text[], %(to_name)s::text[], %(subject)s::text[],
                     %(html)s::text[], %(text)s::text[], %(campaign)s::text[])

-- copy_queue --
COPY email_queue (to_address, to_name, subject, html_body, text_body, campaign) FROM STDIN

-- copy_bare --
COPY bench_bare (to_address, to_name, subject, html_body, text_body, campaign) FROM STDIN

-- deep_fill --
-- ``total`` rows: the newest ``queued`` are queued (every 5th addressed to ``account_id``,
-- every 20th scheduled a day ahead, spread over ``pools`` pools), the rest sent, their
-- created_at spread over the last ``days`` days (oldest first).
INSERT INTO email_queue (to_address, subject, html_body, account_id, pool, status,
                         scheduled_at, attempts, sent_at, sent_by_account_id, message_id,
                         created_at)
SELECT format('deep%%s@example.org', i), 'Deep queue', '<p>A row of the deep queue.</p>',
       CASE WHEN queued AND i %% 5 = 0 THEN %(account_id)s END,
       'pool' || (i %% %(pools)s),
       CASE WHEN queued THEN 'queued' ELSE 'sent' END,
       CASE WHEN queued AND i %% 20 = 1 THEN now() + interval '1 day' ELSE created END,
       CASE WHEN queued THEN 0 ELSE 1 END,
       CASE WHEN queued THEN NULL ELSE created + interval '2 seconds' END,
       CASE WHEN queued THEN NULL ELSE %(account_id)s END,
       CASE WHEN queued THEN NULL ELSE format('<%%s.deep@bench.example>', i) END,
       created
FROM (SELECT i, i > %(total)s - %(queued)s AS queued,
             now() - make_interval(secs => (%(total)s - i) * %(days)s * 86400.0 / %(total)s)
                 AS created
      FROM generate_series(1, %(total)s) AS i) AS g

-- deep_logs --
-- One send_logs row per sent row, as the engine writes them.
INSERT INTO send_logs (queue_id, account_id, outcome, counted, code, response, created_at)
SELECT id, sent_by_account_id, 'sent', true, 250, 'OK', sent_at
FROM email_queue WHERE status = 'sent'

-- vacuum_analyze_queue --
VACUUM ANALYZE email_queue

-- vacuum_analyze_logs --
VACUUM ANALYZE send_logs

-- queue_size --
SELECT count(*) AS total, count(*) FILTER (WHERE status = 'queued') AS queued,
       count(*) FILTER (WHERE status = 'queued' AND due_at > now()) AS future
FROM email_queue

-- explain_claim --
-- Prefixed to the engine's claim_batch to show its plan (run in a rolled-back transaction).
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)

-- mark_queued_sent --
-- Every queued row sent in one UPDATE (fires the webhook trigger once per row).
UPDATE email_queue SET status = 'sent', sent_at = now() WHERE status = 'queued'

-- mark_sent_queued --
UPDATE email_queue SET status = 'queued', sent_at = NULL WHERE status = 'sent'

-- disable_webhook_trigger --
ALTER TABLE email_queue DISABLE TRIGGER email_queue_webhooks

-- enable_webhook_trigger --
ALTER TABLE email_queue ENABLE TRIGGER email_queue_webhooks

-- webhook_deliveries_left --
SELECT count(*) AS n FROM webhook_deliveries WHERE status <> 'delivered'

-- api_single_row --
-- The SQL baseline of one POST /emails: the same row, one INSERT, its id back.
INSERT INTO email_queue (to_address, to_name, subject, html_body, text_body, campaign)
VALUES (%(to_address)s, %(to_name)s, %(subject)s, %(html)s, %(text)s, %(campaign)s)
RETURNING id

-- api_batch_rows --
-- The SQL baseline of one POST /emails/batch: the same rows, one INSERT, their ids back.
INSERT INTO email_queue (to_address, to_name, subject, html_body, text_body, campaign)
SELECT * FROM unnest(%(to_address)s::text[], %(to_name)s::text[], %(subject)s::text[],
                     %(html)s::text[], %(text)s::text[], %(campaign)s::text[])
RETURNING id

-- api_queue_count --
SELECT count(*) AS n FROM email_queue

-- api_reset --
TRUNCATE email_queue, send_logs, email_events, api_idempotency RESTART IDENTITY

-- ==== scale (idle fleet: memory, CPU, start-up, connections) ====

-- worker_pids --
SELECT account_id, pid FROM workers ORDER BY account_id

-- account_worker_pids --
SELECT pid FROM workers WHERE account_id = %(account_id)s

-- ==== many hosts (bench/takeover.py) and day partitions (deep figure) ====

-- bench_now --
SELECT now() AS now

-- placements_by_host --
SELECT host_id, count(*) AS n FROM account_placements GROUP BY host_id ORDER BY host_id

-- accounts_with_live_worker --
-- Accounts whose worker registered after %(since)s, with its pid.
SELECT account_id, pid FROM workers WHERE started_at > %(since)s

-- deep_partitions --
-- Day partitions of send_logs for the ``days`` days the deep queue's logs span.
SELECT count(*) FILTER (WHERE mailer_create_partition('send_logs', d::date)) AS created
FROM generate_series((now() AT TIME ZONE 'UTC')::date - %(days)s,
                     (now() AT TIME ZONE 'UTC')::date, interval '1 day') AS d
