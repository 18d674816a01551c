-- Every statement Mailer runs outside migrations, as named blocks parsed by
-- mailer/sql_queries.py. Parameters are psycopg named placeholders: %(name)s.

-- migrations_lock --
-- Serialises `mailer db migrate` across hosts for the length of its transaction.
SELECT pg_advisory_xact_lock(7346020001)

-- migrations_table --
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)

-- applied_migrations --
SELECT version, name, applied_at FROM schema_migrations ORDER BY version


-- schema_exists --
SELECT to_regclass('schema_migrations') IS NOT NULL AS present

-- record_migration --
INSERT INTO schema_migrations (version, name) VALUES (%(version)s, %(name)s)

-- listen_mailer_queue --
LISTEN mailer_queue

-- listen_mailer_accounts --
LISTEN mailer_accounts

-- listen_mailer_webhooks --
LISTEN mailer_webhooks

-- db_now --
SELECT now() AS now

-- try_account_lock --
-- The cluster-wide "one worker per account" lock, held by the worker's session.
SELECT pg_try_advisory_lock(734602, %(account_id)s::int) AS locked

-- account_lock_holder --
SELECT pid FROM pg_locks
WHERE locktype = 'advisory' AND classid = 734602 AND objid = %(account_id)s::int
  AND objsubid = 2 AND granted
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())

-- get_account --
SELECT * FROM sender_accounts WHERE id = %(account_id)s

-- list_accounts --
SELECT * FROM sender_accounts ORDER BY id

-- insert_account --
INSERT INTO sender_accounts (email, display_name, backend, status, daily_limit, hourly_limit,
                             min_delay_ms, pool, smtp_host, smtp_port, smtp_username,
                             smtp_security, smtp_password_encrypted, ehlo_hostname,
                             smtp_tls_ca_file, smtp_tls_verify, gmail_credentials_encrypted,
                             gmail_project, verp)
VALUES (%(email)s, %(display_name)s, %(backend)s, %(status)s, %(daily_limit)s,
        %(hourly_limit)s, %(min_delay_ms)s, %(pool)s, %(smtp_host)s, %(smtp_port)s,
        %(smtp_username)s, %(smtp_security)s, %(smtp_password_encrypted)s,
        %(ehlo_hostname)s, %(smtp_tls_ca_file)s, %(smtp_tls_verify)s,
        %(gmail_credentials_encrypted)s, %(gmail_project)s, %(verp)s)
RETURNING *

-- edit_account_smtp --
-- `mailer accounts edit`: change only the SMTP settings given (NULL = keep); the clear_*
-- flags set a column back to NULL.
UPDATE sender_accounts
SET smtp_host = COALESCE(%(smtp_host)s, smtp_host),
    smtp_port = CASE WHEN %(clear_smtp_port)s THEN NULL ELSE COALESCE(%(smtp_port)s, smtp_port) END,
    smtp_security = COALESCE(%(smtp_security)s, smtp_security),
    smtp_username = CASE WHEN %(clear_smtp_username)s THEN NULL
                         ELSE COALESCE(%(smtp_username)s, smtp_username) END,
    smtp_password_encrypted = CASE WHEN %(clear_smtp_username)s THEN NULL
                                   ELSE COALESCE(%(smtp_password_encrypted)s,
                                                 smtp_password_encrypted) END,
    ehlo_hostname = CASE WHEN %(clear_ehlo_hostname)s THEN NULL
                         ELSE COALESCE(%(ehlo_hostname)s, ehlo_hostname) END,
    smtp_tls_ca_file = CASE WHEN %(clear_smtp_tls_ca_file)s THEN NULL
                            ELSE COALESCE(%(smtp_tls_ca_file)s, smtp_tls_ca_file) END,
    smtp_tls_verify = COALESCE(%(smtp_tls_verify)s, smtp_tls_verify),
    verp = COALESCE(%(verp)s, verp),
    updated_at = now()
WHERE id = %(account_id)s
RETURNING *

-- set_account_status --
-- Resuming clears the error and any backoff; other statuses record their reason.
UPDATE sender_accounts
SET status = %(status)s,
    last_error = CASE WHEN %(status)s = 'active' THEN NULL ELSE COALESCE(%(reason)s, last_error) END,
    backoff_until = CASE WHEN %(status)s = 'active' THEN NULL ELSE backoff_until END,
    backoff_count = CASE WHEN %(status)s = 'active' THEN 0 ELSE backoff_count END
WHERE id = %(account_id)s
RETURNING *

-- set_account_limits --
UPDATE sender_accounts
SET daily_limit = COALESCE(%(daily_limit)s, daily_limit),
    hourly_limit = CASE WHEN %(clear_hourly)s THEN NULL
                        ELSE COALESCE(%(hourly_limit)s, hourly_limit) END,
    min_delay_ms = COALESCE(%(min_delay_ms)s, min_delay_ms)
WHERE id = %(account_id)s
RETURNING *

-- back_off_account --
-- Account-level backoff (throttling, unreachable server): doubles per repeat, capped;
-- or until the time the provider named (%(until)s, when not NULL).
UPDATE sender_accounts
SET backoff_count = backoff_count + 1,
    backoff_until = COALESCE(%(until)s::timestamptz, now() + make_interval(secs => LEAST(
        %(base_seconds)s * power(2, LEAST(backoff_count, 30)), %(max_seconds)s))),
    last_error = %(reason)s
WHERE id = %(account_id)s
RETURNING backoff_until

-- back_off_gmail_project --
-- A Cloud project's quota ran out: every other active Gmail account of the project of
-- account %(account_id)s backs off until %(until)s too (never shortening a longer backoff).
UPDATE sender_accounts AS a
SET backoff_until = GREATEST(a.backoff_until, %(until)s::timestamptz),
    last_error = %(reason)s
FROM sender_accounts AS src
WHERE src.id = %(account_id)s AND src.gmail_project IS NOT NULL
  AND a.gmail_project = src.gmail_project AND a.backend = 'gmail' AND a.id <> src.id
  AND a.status = 'active'
RETURNING a.id

-- clear_account_backoff --
-- A send went through: the backoff, and the error that caused it, are over.
UPDATE sender_accounts
SET backoff_count = 0, backoff_until = NULL,
    last_error = CASE WHEN last_error LIKE 'backing off:%%' THEN NULL ELSE last_error END
WHERE id = %(account_id)s AND (backoff_count > 0 OR backoff_until IS NOT NULL)

-- suspend_account --
UPDATE sender_accounts SET status = 'suspended', last_error = %(reason)s
WHERE id = %(account_id)s AND status IN ('active', 'paused')

-- claim_batch --
-- Lease up to %(limit)s due rows for one account: rows addressed to it and unassigned
-- rows of its pool, highest priority first, then longest due. Suppressed addresses come
-- back flagged so the worker marks them without sending
-- (an erased address, see erased_contacts, with the reason 'erased').
WITH own AS (
    SELECT id, priority, due_at, template_id FROM email_queue
    WHERE status = 'queued' AND account_id = %(account_id)s AND due_at <= now()
    -- campaigns (0013): rows of a paused or cancelled campaign stay queued, unclaimed
    AND NOT EXISTS (SELECT 1 FROM campaign_settings AS held
                    WHERE held.campaign = email_queue.campaign AND held.state <> 'active')
    ORDER BY priority DESC, due_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), pooled AS (
    SELECT id, priority, due_at, template_id FROM email_queue
    WHERE status = 'queued' AND account_id IS NULL AND pool = %(pool)s AND due_at <= now()
    -- campaigns (0013): rows of a paused or cancelled campaign stay queued, unclaimed
    AND NOT EXISTS (SELECT 1 FROM campaign_settings AS held
                    WHERE held.campaign = email_queue.campaign AND held.state <> 'active')
    ORDER BY priority DESC, due_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), chosen AS (
    SELECT * FROM (SELECT * FROM own UNION ALL SELECT * FROM pooled) AS candidates
    ORDER BY priority DESC, due_at, id
    LIMIT %(limit)s
)
UPDATE email_queue AS q
SET status = 'sending',
    attempt_started_at = NULL,
    locked_by = %(worker_id)s,
    locked_account_id = %(account_id)s,
    locked_until = now() + make_interval(secs => %(lease_seconds)s),
    message_id = COALESCE(q.message_id, format('<%%s.%%s@%%s>', q.id,
                          replace(gen_random_uuid()::text, '-', ''), %(domain)s::text))
FROM chosen LEFT JOIN templates AS t ON t.id = chosen.template_id
WHERE q.id = chosen.id AND q.status = 'queued'
RETURNING q.id, q.to_address, q.to_name, q.subject, q.html_body, q.text_body,
          q.template_id, q.variables, q.headers, q.pool, q.campaign, q.priority,
          q.attempts, q.max_attempts, q.message_id, q.metadata, q.due_at, q.transactional,
          COALESCE(q.track_opens, (SELECT c.track_opens FROM campaign_settings AS c
                                    WHERE c.campaign = q.campaign)) AS track_opens,
          COALESCE(q.track_clicks, (SELECT c.track_clicks FROM campaign_settings AS c
                                     WHERE c.campaign = q.campaign)) AS track_clicks,
          t.subject AS template_subject, t.html_body AS template_html_body,
          t.text_body AS template_text_body,
          COALESCE((SELECT s.reason FROM suppressions AS s
                     WHERE lower(s.email) = lower(btrim(q.to_address))
                       AND (s.expires_at IS NULL OR s.expires_at > now())),
                   (SELECT 'erased' FROM erased_contacts AS e
                     WHERE e.email_hash = mailer_email_hash(q.to_address))) AS suppression_reason

-- record_results --
-- Write a batch of outcomes in one statement: the rows' new states, one send_logs row per
-- attempt (at most once per attempt_id, so a replayed journal logs nothing twice),
-- hard-bounce suppressions and their events. Only rows this worker still leases change
-- state (the guard sits in the WHERE of the UPDATE that changes the row); the log records
-- what happened either way. The in-flight mark is its own statement (mark_in_flight).
WITH r AS (
    SELECT * FROM jsonb_to_recordset(%(results)s::jsonb) AS r(
        id bigint, status text, outcome text, counted boolean, code integer,
        response text, error text, retry_seconds double precision,
        attempted_at timestamptz, duration_ms integer, refund boolean,
        suppress_reason text, to_address text, attempt_id uuid)
), updated AS (
    UPDATE email_queue AS q
    SET status = r.status,
        attempts = q.attempts - CASE WHEN r.refund THEN 1 ELSE 0 END,
        last_error = r.error,
        next_attempt_at = CASE WHEN r.retry_seconds IS NOT NULL
                               THEN r.attempted_at + make_interval(secs => r.retry_seconds)
                               ELSE q.next_attempt_at END,
        sent_at = CASE WHEN r.status = 'sent' THEN r.attempted_at ELSE q.sent_at END,
        sent_by_account_id = CASE WHEN r.status = 'sent' THEN %(account_id)s
                                  ELSE q.sent_by_account_id END,
        attempt_started_at = NULL,
        locked_by = NULL, locked_account_id = NULL, locked_until = NULL
    FROM r
    WHERE q.id = r.id AND q.locked_by = %(worker_id)s AND q.status = 'sending'
    RETURNING q.id
), logged AS (
    INSERT INTO send_logs (queue_id, account_id, outcome, counted, code, response,
                           duration_ms, created_at, attempt_id)
    SELECT r.id, %(account_id)s, r.outcome, r.counted, r.code, r.response, r.duration_ms,
           r.attempted_at, r.attempt_id
    FROM r JOIN email_queue AS q ON q.id = r.id
    WHERE r.outcome IS NOT NULL
    ON CONFLICT (attempt_id, created_at) WHERE attempt_id IS NOT NULL DO NOTHING
    RETURNING queue_id, attempt_id
), suppressed AS (
    INSERT INTO suppressions (email, reason, source)
    SELECT DISTINCT ON (lower(btrim(r.to_address))) btrim(r.to_address), r.suppress_reason,
           'smtp:' || r.code
    FROM r JOIN logged ON logged.attempt_id = r.attempt_id
    WHERE r.suppress_reason IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM erased_contacts AS e
                      WHERE e.email_hash = mailer_email_hash(r.to_address))
    ON CONFLICT ((lower(email))) DO UPDATE
    SET reason = EXCLUDED.reason, source = EXCLUDED.source, created_at = now(),
        expires_at = NULL
    WHERE suppressions.expires_at IS NOT NULL
    RETURNING id
), bounced AS (
    INSERT INTO email_events (queue_id, account_id, type, data)
    SELECT r.id, %(account_id)s, 'bounce',
           jsonb_build_object('code', r.code, 'response', r.response, 'kind', r.suppress_reason)
    FROM r JOIN logged ON logged.attempt_id = r.attempt_id
    WHERE r.suppress_reason IS NOT NULL
    RETURNING id
)
SELECT (SELECT count(*) FROM updated) AS updated, (SELECT count(*) FROM logged) AS logged

-- release_rows --
-- Give leased rows that were never tried back untouched (a row marked in flight ahead of
-- its turn, never sent, gets its attempt back). pooled: another account may take it.
UPDATE email_queue
SET status = 'queued', attempts = attempts - (attempt_started_at IS NOT NULL)::int,
    attempt_started_at = NULL, locked_by = NULL, locked_account_id = NULL, locked_until = NULL
WHERE id = ANY(%(ids)s) AND locked_by = %(worker_id)s AND status = 'sending'
RETURNING id, account_id IS NULL AS pooled

-- release_worker_rows_except --
-- A stopping worker gives back every row it leases but those in %(keep)s (a send cut off
-- mid-flight may have gone out); rows it marked ahead and never sent get their attempt back.
UPDATE email_queue
SET status = 'queued', attempts = attempts - (attempt_started_at IS NOT NULL)::int,
    attempt_started_at = NULL, locked_by = NULL, locked_account_id = NULL, locked_until = NULL
WHERE locked_by = %(worker_id)s AND status = 'sending' AND NOT (id = ANY(%(keep)s))
RETURNING id, account_id IS NULL AS pooled

-- account_rows_leased_by_others --
-- Whether rows of the account are still leased by another worker id once the account's
-- new worker has recovered what it could at start (rows a dead predecessor had in flight
-- wait for their leases to run out). None: the new worker has nothing left to settle.
SELECT EXISTS (
    SELECT 1 FROM email_queue
    WHERE status = 'sending' AND locked_account_id = %(account_id)s
      AND locked_by <> %(worker_id)s) AS leased

-- recover_account_rows --
-- Run by a worker holding its account's lock (at start, then with its heartbeat): rows
-- still leased to the account by another worker id belong to a dead worker, or to one that
-- lost the lock and is stopping. Rows it never started go back untouched at once (its mark
-- would now fail, so it cannot send them). A row marked in flight waits for its lease to
-- expire (its old worker may still be finishing that send), then may have gone out: it
-- counts against the account's limits now (an 'unknown' send_logs row) and keeps its
-- attempt, so a message that kills every worker ends 'failed' instead of looping. The
-- guards are repeated in the UPDATE's own WHERE. Returns one row per recovered id.
WITH held AS (
    SELECT id, attempt_started_at IS NOT NULL AS in_flight FROM email_queue
    WHERE status = 'sending' AND locked_account_id = %(account_id)s
      AND locked_by <> %(worker_id)s
      AND (attempt_started_at IS NULL OR locked_until < now())
    FOR UPDATE SKIP LOCKED
), recovered AS (
    UPDATE email_queue AS q
    SET status = CASE WHEN held.in_flight AND q.attempts >= q.max_attempts
                      THEN 'failed' ELSE 'queued' END,
        last_error = CASE WHEN held.in_flight AND q.attempts >= q.max_attempts
                          THEN 'worker died while sending; attempts exhausted'
                          ELSE q.last_error END,
        attempt_started_at = NULL,
        locked_by = NULL, locked_account_id = NULL, locked_until = NULL
    FROM held
    WHERE q.id = held.id AND q.status = 'sending' AND q.locked_account_id = %(account_id)s
      AND q.locked_by <> %(worker_id)s
      AND (q.attempt_started_at IS NOT NULL) = held.in_flight
      AND (q.attempt_started_at IS NULL OR q.locked_until < now())
    RETURNING q.id, held.in_flight
), logged AS (
    INSERT INTO send_logs (queue_id, account_id, outcome, counted, response)
    SELECT id, %(account_id)s, 'unknown', true, 'worker died while sending this row'
    FROM recovered WHERE in_flight
)
SELECT id, in_flight FROM recovered

-- recover_expired_leases --
-- Rows whose worker stopped renewing its lease, whatever account it sent for, unless a
-- live worker holds that account's lock (it recovers its own account's rows itself, and a
-- stalled owner may still be sending); a row marked in flight counts against that account
-- as above, except rows of %(live_workers)s (workers of this host known to be alive by
-- their locked journals: one cut off from the database still holds their outcomes). Run
-- after replaying this host's dead workers' journals of the accounts concerned (see
-- expired_in_flight_accounts). The guards are repeated in the UPDATE's own WHERE.
WITH expired AS (
    SELECT id, locked_account_id, locked_by, attempt_started_at IS NOT NULL AS in_flight
    FROM email_queue AS q
    WHERE status = 'sending' AND locked_until < now()
      AND NOT (locked_by = ANY(%(live_workers)s::text[]))
      AND NOT EXISTS (
          SELECT 1 FROM pg_locks AS l
          WHERE l.locktype = 'advisory' AND l.classid = 734602 AND l.objsubid = 2
            AND l.objid = q.locked_account_id::int AND l.granted
            AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))
    LIMIT 1000
    FOR UPDATE SKIP LOCKED
), recovered AS (
    UPDATE email_queue AS q
    SET status = CASE WHEN expired.in_flight AND q.attempts >= q.max_attempts
                      THEN 'failed' ELSE 'queued' END,
        last_error = CASE WHEN expired.in_flight AND q.attempts >= q.max_attempts
                          THEN 'worker lease expired while sending; attempts exhausted'
                          ELSE q.last_error END,
        attempt_started_at = NULL,
        locked_by = NULL, locked_account_id = NULL, locked_until = NULL
    FROM expired
    WHERE q.id = expired.id AND q.status = 'sending' AND q.locked_until < now()
      AND q.locked_by = expired.locked_by
      AND (q.attempt_started_at IS NOT NULL) = expired.in_flight
    RETURNING q.id, expired.locked_account_id AS account_id, expired.in_flight
), logged AS (
    INSERT INTO send_logs (queue_id, account_id, outcome, counted, response)
    SELECT id, account_id, 'unknown', true, 'worker lease expired while sending this row'
    FROM recovered WHERE in_flight
)
SELECT id, in_flight FROM recovered

-- expired_in_flight_accounts --
-- Accounts with rows in flight under an expired lease (usually none): their dead workers'
-- journals on this host are replayed before recover_expired_leases settles those rows.
SELECT DISTINCT locked_account_id AS account_id FROM email_queue
WHERE status = 'sending' AND locked_until < now() AND attempt_started_at IS NOT NULL
  AND locked_account_id IS NOT NULL

-- renew_leases --
UPDATE email_queue SET locked_until = now() + make_interval(secs => %(lease_seconds)s)
WHERE status = 'sending' AND locked_by = %(worker_id)s

-- note_worker_crash --
-- The dead worker %(worker_id)s was preparing row %(id)s (its journal says so) and never
-- marked it in flight: count the crash against the row and give it back, or fail it once
-- %(threshold)s workers died on it (a poison row must not take its pool down).
UPDATE email_queue AS q
SET worker_crashes = q.worker_crashes + 1,
    status = CASE WHEN q.worker_crashes + 1 >= %(threshold)s THEN 'failed' ELSE 'queued' END,
    last_error = CASE WHEN q.worker_crashes + 1 >= %(threshold)s
                      THEN format('poison row: %%s workers died while preparing it; not sent',
                                  q.worker_crashes + 1)
                      ELSE q.last_error END,
    attempt_started_at = NULL,
    locked_by = NULL, locked_account_id = NULL, locked_until = NULL
WHERE q.id = %(id)s AND q.locked_by = %(worker_id)s AND q.status = 'sending'
  AND q.attempt_started_at IS NULL
RETURNING q.id, q.status, q.worker_crashes

-- account_window --
-- What counts against the account's limits in the last 24 hours: its counted attempts,
-- and rows another worker of the account marked in flight and nobody has recovered yet
-- (they may be going out now: counted as of now, by id, so the recovery that later logs
-- them adds nothing). One snapshot sees a recovered row either still in flight or
-- logged, never both and never neither.
SELECT created_at AS at, NULL::bigint AS in_flight_id FROM send_logs
WHERE account_id = %(account_id)s AND counted AND created_at > now() - interval '24 hours'
UNION ALL
SELECT now(), id FROM email_queue
WHERE status = 'sending' AND locked_account_id = %(account_id)s
  AND attempt_started_at IS NOT NULL AND locked_by <> %(worker_id)s
ORDER BY 1

-- next_due_at --
-- When the earliest row this account could claim becomes due (either branch is one probe
-- of a partial index on due_at).
-- campaigns (0013): rows of paused or cancelled campaigns are skipped (ORDER BY ... LIMIT 1
-- instead of min(): the anti-join would rule out min()'s index shortcut).
SELECT LEAST(
    (SELECT due_at FROM email_queue
     WHERE status = 'queued' AND account_id = %(account_id)s
       AND NOT EXISTS (SELECT 1 FROM campaign_settings AS held
                       WHERE held.campaign = email_queue.campaign AND held.state <> 'active')
     ORDER BY due_at LIMIT 1),
    (SELECT due_at FROM email_queue
     WHERE status = 'queued' AND account_id IS NULL AND pool = %(pool)s
       AND NOT EXISTS (SELECT 1 FROM campaign_settings AS held
                       WHERE held.campaign = email_queue.campaign AND held.state <> 'active')
     ORDER BY due_at LIMIT 1)) AS due_at

-- demo_drop_database --
DROP DATABASE IF EXISTS mailer_demo WITH (FORCE)

-- demo_create_database --
CREATE DATABASE mailer_demo

-- demo_insert_emails --
-- The demo's mail: one multi-row INSERT, as another system would queue it. Every tenth
-- row is urgent (priority 5); all use Jinja2 variables.
INSERT INTO email_queue (to_address, to_name, subject, html_body, text_body, variables,
                         priority, campaign)
SELECT format('reader%%s@example.org', i), format('Reader %%s', i),
       'Mailer demo #{{ n }}',
       '<h1>Hello {{ name }}</h1><p>This is demo email #{{ n }} from Mailer. '
       '<a href="https://example.org/mailer-demo?n={{ n }}">Read more</a></p>'
       '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>',
       'Hello {{ name }}, this is demo email #{{ n }} from Mailer.',
       jsonb_build_object('n', i, 'name', format('Reader %%s', i)),
       CASE WHEN i %% 10 = 0 THEN 5 ELSE 0 END, 'demo'
FROM generate_series(1, %(count)s) AS i

-- register_worker --
INSERT INTO workers (id, account_id, hostname, pid)
VALUES (%(worker_id)s, %(account_id)s, %(hostname)s, %(pid)s)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()

-- worker_heartbeat --
UPDATE workers SET heartbeat_at = now() WHERE id = %(worker_id)s

-- unregister_worker --
DELETE FROM workers WHERE id = %(worker_id)s

-- forget_stale_workers --
DELETE FROM workers WHERE heartbeat_at < now() - interval '10 minutes'

-- send_rates --
-- The adaptive rates in force for one account (see mailer/shaping.py).
SELECT destination, per_minute, release_at, reason, updated_at FROM send_rates
WHERE account_id = %(account_id)s ORDER BY destination

-- save_send_rate --
INSERT INTO send_rates (account_id, destination, per_minute, release_at, reason)
VALUES (%(account_id)s, %(destination)s, %(per_minute)s, %(release_at)s, %(reason)s)
ON CONFLICT (account_id, destination) DO UPDATE
SET per_minute = EXCLUDED.per_minute, release_at = EXCLUDED.release_at,
    reason = COALESCE(EXCLUDED.reason, send_rates.reason), updated_at = now()

-- delete_send_rate --
-- The rate climbed back to the configured limits: no shaping any more.
DELETE FROM send_rates WHERE account_id = %(account_id)s AND destination = %(destination)s

-- all_send_rates --
SELECT account_id, destination, per_minute, reason FROM send_rates
ORDER BY account_id, destination

-- refund_attempts --
-- Attempts of rows that met a server-wide temporary failure do not count: give them back.
UPDATE email_queue SET attempts = attempts - 1
WHERE id = ANY(%(ids)s) AND status = 'queued' AND attempts > 0

-- queue_counts --
SELECT status, count(*) AS count FROM email_queue GROUP BY status ORDER BY status

-- account_usage --
-- Per account: sends counted in the last hour and day, and when the oldest of each
-- window's sends leaves it (when a limited account frees a slot): the view of migration
-- 0017.
SELECT * FROM account_usage ORDER BY id

-- stranded_rows --
-- Queued rows no worker will take as things stand, grouped with their reason: pinned to
-- an account that is not active ('account_paused', 'account_suspended',
-- 'account_disabled'), or in a pool without an active account
-- ('pool_has_no_active_account'), or (campaigns, 0013) of a paused or cancelled campaign
-- ('campaign_paused', 'campaign_cancelled'; such rows are counted there only). Rows pinned
-- to a deleted account cannot exist (the delete is refused, migration 0006). The first two
-- halves read the claim indexes, the third the campaign index. The pools of unpinned
-- queued rows come from a skip scan of email_queue_due_pool_idx (one probe per pool), so
-- only the rows of a pool without an active account are counted (the console's overview
-- on a 1,000,000-row queue: 1 ms instead of 200). Its cost estimate is high enough to
-- start JIT compilation, which takes longer than the query: the web app's connections
-- run with jit off (tracking/store.py).
WITH RECURSIVE queued_pools AS (
    SELECT min(pool) AS pool FROM email_queue WHERE status = 'queued' AND account_id IS NULL
    UNION ALL
    SELECT (SELECT min(q.pool) FROM email_queue AS q
             WHERE q.status = 'queued' AND q.account_id IS NULL AND q.pool > p.pool)
    FROM queued_pools AS p WHERE p.pool IS NOT NULL
)
SELECT 'account_' || a.status AS reason, a.id AS account_id, a.email AS account_email,
       a.status AS account_status, a.last_error AS account_last_error, NULL::text AS pool,
       NULL::text AS campaign, n.row_count, n.oldest_created_at
FROM sender_accounts AS a
CROSS JOIN LATERAL (
    SELECT count(*) AS row_count, min(q.created_at) AS oldest_created_at
    FROM email_queue AS q WHERE q.account_id = a.id AND q.status = 'queued'
      AND NOT EXISTS (SELECT 1 FROM campaign_settings AS held
                      WHERE held.campaign = q.campaign AND held.state <> 'active')
) AS n
WHERE a.status <> 'active' AND n.row_count > 0
UNION ALL
SELECT 'pool_has_no_active_account', NULL, NULL, NULL, NULL, p.pool, NULL,
       n.row_count, n.oldest_created_at
FROM queued_pools AS p
CROSS JOIN LATERAL (
    SELECT count(*) AS row_count, min(q.created_at) AS oldest_created_at
    FROM email_queue AS q
    WHERE q.status = 'queued' AND q.account_id IS NULL AND q.pool = p.pool
      AND NOT EXISTS (SELECT 1 FROM campaign_settings AS held
                      WHERE held.campaign = q.campaign AND held.state <> 'active')
) AS n
WHERE p.pool IS NOT NULL AND n.row_count > 0
  AND NOT EXISTS (SELECT 1 FROM sender_accounts AS a
                  WHERE a.pool = p.pool AND a.status = 'active')
UNION ALL
SELECT 'campaign_' || c.state, NULL, NULL, NULL, NULL, NULL, c.campaign,
       n.row_count, n.oldest_created_at
FROM campaign_settings AS c
CROSS JOIN LATERAL (
    SELECT count(*) AS row_count, min(q.created_at) AS oldest_created_at
    FROM email_queue AS q WHERE q.campaign = c.campaign AND q.status = 'queued'
) AS n
WHERE c.state <> 'active' AND n.row_count > 0
ORDER BY row_count DESC, account_id, pool, campaign

-- ==== orchestrator ====

-- orchestrator_accounts --
-- What the orchestrator reads of every account: whether it should have a worker.
SELECT id, status FROM sender_accounts ORDER BY id

-- orchestrator_held_account_locks --
-- Accounts whose worker lock (see try_account_lock) some session, on any host, holds in
-- this database; advisory locks are per database, pg_locks shows the whole cluster.
SELECT objid::bigint AS account_id FROM pg_locks
WHERE locktype = 'advisory' AND classid = 734602 AND objsubid = 2 AND granted
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())

-- orchestrator_forget_worker --
-- The workers row a worker that died without unregistering left behind.
DELETE FROM workers WHERE hostname = %(hostname)s AND pid = %(pid)s

-- ==== tracking ====

-- insert_events --
-- Record a batch of events; %(events)s is a JSON array of {queue_id, type, data,
-- suspected_bot, created_at}. A queue row that no longer exists leaves queue_id NULL;
-- account_id is the account that sent the row. Two clicks on different links of one
-- message within %(burst_seconds)s of each other are a scanner following every link:
-- the new click and the earlier ones are flagged (data->>'scanner' = 'every_link').
WITH r AS (
    SELECT * FROM jsonb_to_recordset(%(events)s::jsonb) AS r(
        queue_id bigint, type text, data jsonb, suspected_bot boolean,
        created_at timestamptz)
), batch AS (
    SELECT r.type, COALESCE(r.data, '{}'::jsonb) AS data,
           COALESCE(r.suspected_bot, false) AS suspected_bot,
           COALESCE(r.created_at, now()) AS created_at, q.id AS row_id, q.sent_by_account_id
    FROM r LEFT JOIN email_queue AS q ON q.id = r.queue_id
), clicks AS (
    SELECT e.queue_id, e.data->>'link' AS link, e.created_at
    FROM email_events AS e
    WHERE e.type = 'click' AND e.queue_id IN (SELECT row_id FROM batch WHERE type = 'click')
    UNION ALL
    SELECT row_id, data->>'link', created_at FROM batch WHERE type = 'click'
), flagged_earlier AS (
    UPDATE email_events AS e
    SET suspected_bot = true, data = e.data || '{"scanner": "every_link"}'::jsonb
    FROM batch AS b
    WHERE b.type = 'click' AND e.type = 'click' AND e.queue_id = b.row_id
      AND NOT e.suspected_bot
      AND e.data->>'link' IS DISTINCT FROM b.data->>'link'
      AND abs(extract(epoch FROM e.created_at - b.created_at)) <= %(burst_seconds)s
    RETURNING e.id
)
INSERT INTO email_events (queue_id, account_id, type, data, suspected_bot, created_at)
SELECT b.row_id, b.sent_by_account_id, b.type,
       CASE WHEN burst.hit AND NOT b.suspected_bot
            THEN b.data || '{"scanner": "every_link"}'::jsonb ELSE b.data END,
       b.suspected_bot OR burst.hit, b.created_at
FROM batch AS b
CROSS JOIN LATERAL (
    SELECT b.type = 'click' AND EXISTS (
        SELECT 1 FROM clicks AS c
        WHERE c.queue_id = b.row_id AND c.link IS DISTINCT FROM b.data->>'link'
          AND abs(extract(epoch FROM c.created_at - b.created_at)) <= %(burst_seconds)s
    ) AS hit
) AS burst
RETURNING id

-- unsubscribe --
-- One-click unsubscribe of %(email)s from message %(queue_id)s: an 'unsubscribe'
-- suppression (a temporary one, such as a soft bounce, becomes permanent; a permanent one
-- stays as it is) and one 'unsubscribe' event per message, however often it is posted.
-- An erased address (erased_contacts) is already blocked: nothing is written for it, so
-- no plaintext comes back after an erasure.
WITH suppressed AS (
    INSERT INTO suppressions AS s (email, reason, source)
    SELECT btrim(%(email)s), 'unsubscribe', %(source)s
    WHERE NOT EXISTS (SELECT 1 FROM erased_contacts AS e
                      WHERE e.email_hash = mailer_email_hash(%(email)s))
    ON CONFLICT ((lower(email))) DO UPDATE
    SET reason = EXCLUDED.reason, source = EXCLUDED.source, created_at = now(),
        expires_at = NULL
    WHERE s.expires_at IS NOT NULL
    RETURNING s.id
), msg AS (
    SELECT id, sent_by_account_id FROM email_queue WHERE id = %(queue_id)s
), event AS (
    INSERT INTO email_events (queue_id, account_id, type, data)
    SELECT (SELECT id FROM msg), (SELECT sent_by_account_id FROM msg), 'unsubscribe',
           %(data)s::jsonb
    WHERE NOT EXISTS (SELECT 1 FROM erased_contacts AS e
                      WHERE e.email_hash = mailer_email_hash(%(email)s))
      AND (EXISTS (SELECT 1 FROM suppressed)
           OR (EXISTS (SELECT 1 FROM msg) AND NOT EXISTS (
                   SELECT 1 FROM email_events
                   WHERE queue_id = %(queue_id)s AND type = 'unsubscribe')))
    RETURNING id
)
SELECT (SELECT count(*) FROM suppressed) AS suppressed, (SELECT count(*) FROM event) AS recorded

-- suppression_for --
-- The address's suppression in force, if any.
SELECT email, reason, source, created_at, expires_at FROM suppressions
WHERE lower(email) = lower(btrim(%(email)s)) AND (expires_at IS NULL OR expires_at > now())

-- upsert_suppressions --
-- Add suppressions in one statement; %(rows)s is a JSON array of {email, reason, source,
-- expires_at}. A permanent suppression (no expires_at) is never replaced; a temporary one
-- gives way to a permanent one, to one that lasts longer, or once it has expired.
-- An erased address (erased_contacts) is skipped: it is blocked already, and its plaintext
-- must not come back. Returns the suppressions added or changed.
WITH r AS (
    SELECT DISTINCT ON (lower(btrim(email)))
           btrim(email) AS email, reason, source, expires_at
    FROM jsonb_to_recordset(%(rows)s::jsonb) AS r(
        email text, reason text, source text, expires_at timestamptz)
    ORDER BY lower(btrim(email)), expires_at DESC NULLS FIRST
)
INSERT INTO suppressions AS s (email, reason, source, expires_at)
SELECT email, reason, source, expires_at FROM r
WHERE NOT EXISTS (SELECT 1 FROM erased_contacts AS e
                  WHERE e.email_hash = mailer_email_hash(r.email))
ON CONFLICT ((lower(email))) DO UPDATE
SET reason = EXCLUDED.reason, source = EXCLUDED.source, expires_at = EXCLUDED.expires_at,
    created_at = now()
WHERE s.expires_at IS NOT NULL
  AND (EXCLUDED.expires_at IS NULL OR EXCLUDED.expires_at > s.expires_at
       OR s.expires_at <= now())
RETURNING s.email, s.reason, s.source, s.created_at, s.expires_at

-- delete_suppressions --
-- %(emails)s: lower-cased addresses.
DELETE FROM suppressions WHERE lower(email) = ANY(%(emails)s::text[])
RETURNING email, reason

-- list_suppressions --
-- All suppressions, or those of one %(reason)s; expired ones only with %(include_expired)s.
SELECT email, reason, source, created_at, expires_at FROM suppressions
WHERE (%(reason)s::text IS NULL OR reason = %(reason)s::text)
  AND (%(include_expired)s OR expires_at IS NULL OR expires_at > now())
ORDER BY lower(email)

-- claim_sns_message --
-- Remember an SNS MessageId; no row back means it was processed before (SNS redelivers,
-- an attacker may replay). Ids older than %(keep_seconds)s are forgotten on the way.
WITH forgotten AS (
    DELETE FROM sns_messages
    WHERE received_at < now() - make_interval(secs => %(keep_seconds)s)
)
INSERT INTO sns_messages (message_id, topic_arn, type)
VALUES (%(message_id)s, %(topic_arn)s, %(type)s)
ON CONFLICT (message_id) DO NOTHING
RETURNING message_id

-- queue_rows_by_message_id --
-- The rows that were sent with these Message-IDs (%(message_ids)s, with angle brackets).
SELECT id, to_address, message_id, sent_by_account_id FROM email_queue
WHERE message_id = ANY(%(message_ids)s::text[])

-- queue_rows_by_id --
-- The rows genuine VERP return paths name (%(ids)s: row ids whose signature verified).
SELECT id, to_address, message_id, sent_by_account_id FROM email_queue
WHERE id = ANY(%(ids)s::bigint[])

-- reputation_stats --
-- An account's sends that reached a verdict, hard bounces and complaints over the last
-- %(window_seconds)s, counting only since it was last made active (reputation_since).
SELECT a.id, a.status, since.t AS since,
       (SELECT count(*) FROM send_logs AS l
         WHERE l.account_id = a.id AND l.counted AND l.outcome IN ('sent', 'permanent')
           AND l.created_at > since.t) AS sends,
       (SELECT count(*) FROM email_events AS e
         WHERE e.account_id = a.id AND e.type = 'bounce' AND e.data->>'kind' = 'hard_bounce'
           AND e.created_at > since.t) AS hard_bounces,
       (SELECT count(*) FROM email_events AS e
         WHERE e.account_id = a.id AND e.type = 'complaint'
           AND e.created_at > since.t) AS complaints
FROM sender_accounts AS a
CROSS JOIN LATERAL (
    SELECT GREATEST(now() - make_interval(secs => %(window_seconds)s), a.reputation_since) AS t
) AS since
WHERE a.id = %(account_id)s

-- pause_for_reputation --
-- Pause an active account with the reason in last_error and an account_events row.
WITH paused AS (
    UPDATE sender_accounts SET status = 'paused', last_error = %(reason)s
    WHERE id = %(account_id)s AND status = 'active'
    RETURNING id
)
INSERT INTO account_events (account_id, type, data)
SELECT id, 'reputation_pause', %(data)s::jsonb FROM paused
RETURNING account_id

-- metrics_sends --
-- Attempts by account and outcome, since the beginning (a Prometheus counter).
SELECT account_id, outcome, count(*) AS count FROM send_logs
GROUP BY account_id, outcome ORDER BY account_id, outcome

-- metrics_events --
-- Events by type, scanners apart (a Prometheus counter).
SELECT type, suspected_bot, count(*) AS count FROM email_events
GROUP BY type, suspected_bot ORDER BY type, suspected_bot

-- ==== retention ====

-- prune_queue_batch --
-- One bounded batch of `mailer db prune`: terminal rows created (and sent) before the
-- cutoff, after the keyset id, in id order; their send_logs and email_events go with
-- their day partitions (no cascade, see migration 0020). SKIP LOCKED: never waits on a
-- row another session holds.
WITH doomed AS (
    SELECT id FROM email_queue
    WHERE id > %(after_id)s
      AND status IN ('sent', 'failed', 'suppressed', 'cancelled')
      AND created_at < %(cutoff)s AND (sent_at IS NULL OR sent_at < %(cutoff)s)
    ORDER BY id
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM email_queue AS q USING doomed WHERE q.id = doomed.id RETURNING q.id
)
SELECT count(*) AS deleted, max(id) AS last_id FROM gone

-- prune_send_logs_batch --
-- Attempt logs older than the cutoff whose queue row is still kept (a row retried for
-- months); the 24-hour limit window never reaches this far back.
WITH doomed AS (
    SELECT id FROM send_logs
    WHERE id > %(after_id)s AND created_at < %(cutoff)s
    ORDER BY id
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM send_logs AS l USING doomed WHERE l.id = doomed.id RETURNING l.id
)
SELECT count(*) AS deleted, max(id) AS last_id FROM gone

-- prune_email_events_batch --
WITH doomed AS (
    SELECT id FROM email_events
    WHERE id > %(after_id)s AND created_at < %(cutoff)s
    ORDER BY id
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM email_events AS e USING doomed WHERE e.id = doomed.id RETURNING e.id
)
SELECT count(*) AS deleted, max(id) AS last_id FROM gone

-- prune_webhook_deliveries_batch --
-- Webhook deliveries settled (delivered, or failed for good) before the cutoff, with their
-- attempts (ON DELETE CASCADE). Pending ones stay, however old: their endpoint may be
-- re-enabled.
WITH doomed AS (
    SELECT id FROM webhook_deliveries
    WHERE id > %(after_id)s AND status <> 'pending' AND created_at < %(cutoff)s
    ORDER BY id
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM webhook_deliveries AS d USING doomed WHERE d.id = doomed.id RETURNING d.id
)
SELECT count(*) AS deleted, max(id) AS last_id FROM gone

-- ==== bounce mail (mailer/bounces) ====

-- set_account_imap --
-- Change an account's bounce mailbox settings; NULL parameters keep the current value,
-- %(clear)s removes the mailbox (the reader then skips the account).
UPDATE sender_accounts
SET imap_host = CASE WHEN %(clear)s THEN NULL ELSE COALESCE(%(imap_host)s, imap_host) END,
    imap_port = CASE WHEN %(clear)s THEN NULL ELSE COALESCE(%(imap_port)s, imap_port) END,
    imap_security = COALESCE(%(imap_security)s, imap_security),
    imap_username = CASE WHEN %(clear)s THEN NULL
                         ELSE COALESCE(%(imap_username)s, imap_username) END,
    imap_password_encrypted = CASE WHEN %(clear)s THEN NULL
                                   ELSE COALESCE(%(imap_password_encrypted)s,
                                                 imap_password_encrypted) END
WHERE id = %(account_id)s
RETURNING *

-- bounce_mailbox_accounts --
-- Accounts whose bounce mail the reader polls: every one with an IMAP mailbox, and every
-- Gmail account with credentials (read through the API), whatever its status (a paused
-- account's bounces still matter), with where the reader stopped.
SELECT a.*, m.cursor AS bounce_cursor
FROM sender_accounts AS a LEFT JOIN bounce_mailboxes AS m ON m.account_id = a.id
WHERE a.imap_host IS NOT NULL
   OR (a.backend = 'gmail' AND a.gmail_credentials_encrypted IS NOT NULL)
ORDER BY a.id

-- save_bounce_cursor --
INSERT INTO bounce_mailboxes (account_id, cursor, checked_at, last_error)
VALUES (%(account_id)s, %(cursor)s, now(), %(last_error)s)
ON CONFLICT (account_id) DO UPDATE
SET cursor = COALESCE(EXCLUDED.cursor, bounce_mailboxes.cursor), checked_at = now(),
    last_error = EXCLUDED.last_error

-- try_bounce_reader_lock --
-- One bounce reader per database: a session advisory lock on its own connection.
SELECT pg_try_advisory_lock(734603, 1) AS locked

-- claim_bounce_message --
-- Remember a report once; no row back means it was applied before (by a reader that
-- crashed before flagging it in the mailbox): apply nothing again.
INSERT INTO bounce_messages (report_key, account_id, mailbox_ref, kind, subject, decisions, raw)
VALUES (%(report_key)s, %(account_id)s, %(mailbox_ref)s, %(kind)s, %(subject)s,
        %(decisions)s::jsonb, %(raw)s)
ON CONFLICT (report_key) DO NOTHING
RETURNING id

-- soft_bounces_in_window --
-- Soft bounces recorded for %(email)s over the last %(window_seconds)s (this one included).
SELECT count(*) AS n FROM email_events
WHERE type = 'bounce' AND data->>'kind' = 'soft_bounce'
  AND lower(data->>'recipient') = lower(btrim(%(email)s))
  AND created_at > now() - make_interval(secs => %(window_seconds)s)

-- list_bounce_messages --
-- Recent reports, one line per recipient decision, newest first.
SELECT b.id, b.received_at, b.account_id, a.email AS account_email, b.kind,
       d->>'address' AS address, d->>'status' AS status, d->>'kind' AS decision,
       (d->>'queue_id')::bigint AS queue_id
FROM (SELECT * FROM bounce_messages ORDER BY id DESC LIMIT %(limit)s) AS b
LEFT JOIN sender_accounts AS a ON a.id = b.account_id
LEFT JOIN LATERAL jsonb_array_elements(b.decisions) AS d ON true
ORDER BY b.id DESC

-- get_bounce_message --
SELECT b.*, a.email AS account_email
FROM bounce_messages AS b LEFT JOIN sender_accounts AS a ON a.id = b.account_id
WHERE b.id = %(bounce_id)s

-- upsert_dkim_key --
-- One DKIM key per domain: adding a key for a domain replaces its previous key.
INSERT INTO dkim_keys (domain, selector, algorithm, private_key_encrypted, public_key)
VALUES (%(domain)s, %(selector)s, %(algorithm)s, %(private_key_encrypted)s, %(public_key)s)
ON CONFLICT (domain) DO UPDATE
SET selector = EXCLUDED.selector, algorithm = EXCLUDED.algorithm,
    private_key_encrypted = EXCLUDED.private_key_encrypted,
    public_key = EXCLUDED.public_key, updated_at = now()

-- get_dkim_key --
SELECT domain, selector, algorithm, private_key_encrypted FROM dkim_keys
WHERE domain = %(domain)s

-- list_dkim_keys --
SELECT domain, selector, algorithm, public_key, created_at, updated_at FROM dkim_keys
ORDER BY domain

-- insert_webhook_endpoint --
-- A new outbound webhook endpoint (mailer/webhooks_out.py); the secret arrives encrypted.
INSERT INTO webhook_endpoints (url, events, secret_encrypted)
VALUES (%(url)s, %(events)s, %(secret_encrypted)s)
RETURNING id, url, events, enabled, disabled_reason, disabled_at, failing_since, created_at

-- list_webhook_endpoints --
-- Every endpoint, never its secret, with its pending deliveries.
SELECT e.id, e.url, e.events, e.enabled, e.disabled_reason, e.disabled_at, e.failing_since,
       e.created_at,
       (SELECT count(*) FROM webhook_deliveries AS d
        WHERE d.endpoint_id = e.id AND d.status = 'pending') AS pending
FROM webhook_endpoints AS e
WHERE %(endpoint_id)s::bigint IS NULL OR e.id = %(endpoint_id)s::bigint
ORDER BY e.id

-- delete_webhook_endpoint --
-- Its deliveries and attempts go with it (ON DELETE CASCADE).
DELETE FROM webhook_endpoints WHERE id = %(endpoint_id)s RETURNING id

-- enable_webhook_endpoint --
-- Back on after an automatic disable: the failure run starts afresh.
UPDATE webhook_endpoints
SET enabled = true, disabled_reason = NULL, disabled_at = NULL, failing_since = NULL,
    updated_at = now()
WHERE id = %(endpoint_id)s RETURNING id

-- claim_webhook_deliveries --
-- Due deliveries of enabled endpoints, oldest first. Run inside the transaction that also
-- records their outcome: the row locks hold until the sender commits after sending, so a
-- crashed sender's deliveries are simply due again (at least once), and two senders never
-- send one delivery at the same time.
SELECT d.id, d.webhook_id, d.endpoint_id, d.event_type, d.payload::text AS body,
       d.attempts, d.created_at, e.url, e.secret_encrypted
FROM webhook_deliveries AS d
JOIN webhook_endpoints AS e ON e.id = d.endpoint_id
WHERE d.status = 'pending' AND d.next_attempt_at <= %(now)s AND e.enabled
ORDER BY d.next_attempt_at, d.id
LIMIT %(limit)s
FOR UPDATE OF d SKIP LOCKED

-- record_webhook_attempts --
-- The outcome of each attempt of a claimed batch: one webhook_attempts row each, and the
-- delivery delivered, due again later, or failed for good (the sender decides which).
WITH r AS (
    SELECT * FROM jsonb_to_recordset(%(results)s::jsonb) AS r(
        delivery_id bigint, endpoint_id bigint, status text, status_code integer,
        error text, latency_ms integer, response_excerpt text,
        next_attempt_at timestamptz)
), logged AS (
    INSERT INTO webhook_attempts (delivery_id, endpoint_id, status_code, error, latency_ms,
                                  response_excerpt, created_at)
    SELECT delivery_id, endpoint_id, status_code, error, latency_ms, response_excerpt,
           %(now)s
    FROM r
)
UPDATE webhook_deliveries AS d
SET status = r.status,
    attempts = d.attempts + 1,
    next_attempt_at = COALESCE(r.next_attempt_at, d.next_attempt_at),
    last_error = r.error,
    delivered_at = CASE WHEN r.status = 'delivered' THEN %(now)s END
FROM r
WHERE d.id = r.delivery_id

-- webhook_endpoints_succeeded --
-- An endpoint that took one delivery is healthy again.
UPDATE webhook_endpoints SET failing_since = NULL, updated_at = %(now)s
WHERE id = ANY (%(endpoint_ids)s) AND failing_since IS NOT NULL

-- webhook_endpoints_failed --
-- Endpoints whose every attempt of this batch failed: the failure run starts now if it had
-- not begun, and an endpoint failing continuously since %(disable_before)s is disabled with
-- the reason. Returns the endpoints just disabled.
WITH r AS (
    SELECT * FROM jsonb_to_recordset(%(failures)s::jsonb) AS r(endpoint_id bigint, error text)
)
UPDATE webhook_endpoints AS e
SET failing_since = COALESCE(e.failing_since, %(now)s),
    enabled = NOT (COALESCE(e.failing_since, %(now)s) <= %(disable_before)s),
    disabled_at = CASE WHEN COALESCE(e.failing_since, %(now)s) <= %(disable_before)s
                       THEN %(now)s END,
    disabled_reason = CASE WHEN COALESCE(e.failing_since, %(now)s) <= %(disable_before)s
                           THEN 'every delivery failed since '
                                || to_char(e.failing_since AT TIME ZONE 'UTC',
                                           'YYYY-MM-DD HH24:MI "UTC"')
                                || '; last error: ' || r.error END,
    updated_at = %(now)s
FROM r
WHERE e.id = r.endpoint_id AND e.enabled
RETURNING e.id, e.enabled, e.disabled_reason


-- insert_api_key --
-- A new API key (only its hash is stored).
INSERT INTO api_keys (name, prefix, key_hash, scope, pools)
VALUES (%(name)s, %(prefix)s, %(key_hash)s, %(scope)s, %(pools)s)
RETURNING *

-- list_api_keys --
SELECT * FROM api_keys ORDER BY id

-- revoke_api_key --
UPDATE api_keys SET revoked_at = now()
WHERE (id::text = %(key)s OR prefix = %(key)s) AND revoked_at IS NULL
RETURNING *

-- touch_api_key --
-- The live key with this prefix; last_used_at moves at most once a minute (fewer writes).
WITH touched AS (
    UPDATE api_keys SET last_used_at = now()
    WHERE prefix = %(prefix)s AND revoked_at IS NULL
      AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
    RETURNING *
)
SELECT * FROM touched
UNION ALL
SELECT * FROM api_keys
WHERE prefix = %(prefix)s AND revoked_at IS NULL AND NOT EXISTS (SELECT 1 FROM touched)

-- count_api_request --
-- One more request of this key in the current fixed window; returns the new count. Run on
-- its own (autocommit), it commits without waiting for the WAL flush (set_config(...,
-- true) lasts until the statement's own commit): a count lost in a crash is harmless, and
-- it saves a disk flush per API request.
INSERT INTO api_rate_windows AS w (api_key_id, window_start, requests)
SELECT %(key_id)s, to_timestamp(floor(extract(epoch FROM now()) / %(window)s) * %(window)s), 1
FROM (SELECT set_config('synchronous_commit', 'off', true)) AS unflushed
ON CONFLICT (api_key_id, window_start) DO UPDATE SET requests = w.requests + 1
RETURNING requests, extract(epoch FROM window_start)::float8 + %(window)s
          - extract(epoch FROM now())::float8 AS reset_seconds

-- prune_api_rate_windows --
-- Past windows, a bounded batch at a time (run by the first request of each window).
DELETE FROM api_rate_windows WHERE (api_key_id, window_start) IN (
    SELECT api_key_id, window_start FROM api_rate_windows
    WHERE window_start < now() - interval '1 hour' LIMIT 5000)

-- claim_idempotency_key --
-- Take the key for this request: a fresh key, one whose first use is over 24 h old, or one
-- the same request claimed over %(stale_seconds)s ago without ever answering (its process
-- died). No row back: the key is held by another request (completed or still running).
-- The claim's created_at is its token: only its holder may complete or release it. Its
-- commit does not wait for the WAL flush (see count_api_request): a claim lost in a crash
-- belonged to a request that had not answered, and the rows' own commit flushes it anyway.
INSERT INTO api_idempotency AS i (api_key_id, idem_key, request_hash)
SELECT %(key_id)s, %(idem_key)s, %(request_hash)s
FROM (SELECT set_config('synchronous_commit', 'off', true)) AS unflushed
ON CONFLICT (api_key_id, idem_key) DO UPDATE
SET request_hash = EXCLUDED.request_hash, status_code = NULL, response_body = NULL,
    created_at = now()
WHERE i.created_at < now() - interval '24 hours'
   OR (i.status_code IS NULL AND i.request_hash = EXCLUDED.request_hash
       AND i.created_at < now() - make_interval(secs => %(stale_seconds)s))
RETURNING api_key_id, created_at

-- get_idempotency_key --
SELECT * FROM api_idempotency WHERE api_key_id = %(key_id)s AND idem_key = %(idem_key)s

-- complete_idempotency_key --
-- Record the answer, if the claim (%(claimed_at)s) is still this request's.
UPDATE api_idempotency SET status_code = %(status_code)s, response_body = %(response_body)s
WHERE api_key_id = %(key_id)s AND idem_key = %(idem_key)s
  AND created_at = %(claimed_at)s AND status_code IS NULL
RETURNING api_key_id

-- release_idempotency_key --
-- The request failed on the server's side: a retry with the same key may run again.
DELETE FROM api_idempotency
WHERE api_key_id = %(key_id)s AND idem_key = %(idem_key)s AND status_code IS NULL
  AND created_at = %(claimed_at)s

-- prune_idempotency_keys --
-- Keys past their 24 hours, a bounded batch at a time.
DELETE FROM api_idempotency WHERE (api_key_id, idem_key) IN (
    SELECT api_key_id, idem_key FROM api_idempotency
    WHERE created_at < now() - interval '24 hours' LIMIT 5000)

-- insert_api_emails --
-- Every message of one API request in one statement; ids ascend in request order.
INSERT INTO email_queue (to_address, to_name, subject, html_body, text_body, template_id,
                         variables, headers, account_id, pool, campaign, priority,
                         scheduled_at, metadata, transactional, track_opens, track_clicks,
                         api_key_id)
SELECT r.to_address, r.to_name, r.subject, r.html_body, r.text_body, r.template_id,
       r.variables, r.headers, r.account_id, COALESCE(r.pool, 'default'), r.campaign,
       COALESCE(r.priority, 0), COALESCE(r.scheduled_at, now()), COALESCE(r.metadata, '{}'),
       COALESCE(r.transactional, false), r.track_opens, r.track_clicks, %(api_key_id)s
FROM jsonb_array_elements(%(rows)s::jsonb) WITH ORDINALITY AS e(item, n),
     jsonb_to_record(e.item) AS r(
    to_address text, to_name text, subject text, html_body text, text_body text,
    template_id bigint, variables jsonb, headers jsonb, account_id bigint, pool text,
    campaign text, priority integer, scheduled_at timestamptz, metadata jsonb,
    transactional boolean, track_opens boolean, track_clicks boolean)
ORDER BY e.n
RETURNING id, status, message_id

-- api_template_ids --
-- Templates named by id or name in a submission, with what the submission's variables are
-- tried on.
SELECT id, name, subject, html_body, text_body FROM templates
WHERE id::text = ANY(%(refs)s) OR name = ANY(%(refs)s)

-- api_accounts_for_send --
SELECT id, pool FROM sender_accounts WHERE id = ANY(%(ids)s)

-- api_get_email --
SELECT id, to_address, to_name, subject, template_id, account_id, pool, campaign, priority,
       scheduled_at, status, attempts, max_attempts, next_attempt_at, last_error, message_id,
       sent_by_account_id, sent_at, metadata, transactional, track_opens, track_clicks,
       created_at, api_key_id
FROM email_queue
WHERE id = %(id)s AND (%(api_key_id)s::bigint IS NULL OR api_key_id = %(api_key_id)s)

-- api_email_attempts --
SELECT id, account_id, outcome, code, response, duration_ms, created_at
FROM send_logs WHERE queue_id = %(id)s ORDER BY id

-- api_email_events --
SELECT id, type, data, created_at FROM email_events WHERE queue_id = %(id)s ORDER BY id

-- api_list_emails --
-- Keyset pagination, newest first: rows with id below the cursor.
SELECT id, to_address, subject, status, campaign, pool, attempts, message_id,
       scheduled_at, sent_at, created_at
FROM email_queue
WHERE (%(cursor)s::bigint IS NULL OR id < %(cursor)s)
  AND (%(status)s::text IS NULL OR status = %(status)s)
  AND (%(campaign)s::text IS NULL OR campaign = %(campaign)s)
  AND (%(to)s::text IS NULL OR lower(to_address) = lower(%(to)s))
  AND (%(since)s::timestamptz IS NULL OR created_at >= %(since)s)
  AND (%(api_key_id)s::bigint IS NULL OR api_key_id = %(api_key_id)s)
ORDER BY id DESC
LIMIT %(limit)s

-- api_cancel_email --
UPDATE email_queue SET status = 'cancelled', last_error = 'cancelled through the API'
WHERE id = %(id)s AND status = 'queued'
  AND (%(api_key_id)s::bigint IS NULL OR api_key_id = %(api_key_id)s)
RETURNING id, status, message_id

-- api_retry_email --
UPDATE email_queue
SET status = 'queued', attempts = 0, next_attempt_at = NULL, scheduled_at = now(),
    last_error = 'retried through the API after: ' || COALESCE(last_error, 'no error recorded')
WHERE id = %(id)s AND status = 'failed'
  AND (%(api_key_id)s::bigint IS NULL OR api_key_id = %(api_key_id)s)
RETURNING id, status, message_id

-- api_list_templates --
SELECT * FROM templates
WHERE (%(cursor)s::bigint IS NULL OR id > %(cursor)s) ORDER BY id LIMIT %(limit)s

-- api_get_template --
SELECT * FROM templates WHERE id::text = %(ref)s OR name = %(ref)s

-- api_insert_template --
INSERT INTO templates (name, subject, html_body, text_body)
VALUES (%(name)s, %(subject)s, %(html_body)s, %(text_body)s)
ON CONFLICT (name) DO NOTHING
RETURNING *

-- api_update_template --
UPDATE templates
SET subject = COALESCE(%(subject)s, subject),
    html_body = CASE WHEN %(set_html)s THEN %(html_body)s ELSE html_body END,
    text_body = CASE WHEN %(set_text)s THEN %(text_body)s ELSE text_body END,
    updated_at = now()
WHERE id::text = %(ref)s OR name = %(ref)s
RETURNING *

-- api_delete_template --
-- Refused (no row back, in_use true) while a queued or sending row uses the template.
WITH target AS (SELECT id FROM templates WHERE id::text = %(ref)s OR name = %(ref)s),
in_use AS (
    SELECT EXISTS (SELECT 1 FROM email_queue
                   WHERE template_id IN (SELECT id FROM target)
                     AND status IN ('queued', 'sending')) AS in_use
),
deleted AS (
    DELETE FROM templates WHERE id IN (SELECT id FROM target)
      AND NOT (SELECT in_use FROM in_use)
      AND NOT EXISTS (SELECT 1 FROM email_queue WHERE template_id IN (SELECT id FROM target))
    RETURNING id
)
SELECT (SELECT count(*) FROM target) AS found, (SELECT in_use FROM in_use) AS in_use,
       (SELECT count(*) FROM deleted) AS deleted

-- api_list_suppressions --
SELECT id, email, reason, source, created_at, expires_at FROM suppressions
WHERE (%(cursor)s::bigint IS NULL OR id > %(cursor)s)
  AND (%(search)s::text IS NULL OR lower(email) LIKE '%%' || lower(%(search)s) || '%%')
  AND (%(reason)s::text IS NULL OR reason = %(reason)s)
ORDER BY id LIMIT %(limit)s

-- api_get_suppression --
SELECT id, email, reason, source, created_at, expires_at FROM suppressions
WHERE lower(email) = lower(%(email)s)

-- api_list_accounts --
SELECT id, email, display_name, backend, status, daily_limit, hourly_limit, min_delay_ms,
       pool, smtp_host, smtp_port, smtp_security, last_error, created_at, updated_at
FROM sender_accounts
WHERE (%(id)s::bigint IS NULL OR id = %(id)s)
ORDER BY id

-- api_set_account_status --
-- Pause (from active) or resume (from paused) an account.
UPDATE sender_accounts SET status = %(status)s, updated_at = now()
WHERE id = %(id)s AND status = ANY(%(from_status)s)
RETURNING id

-- api_set_account_limits --
UPDATE sender_accounts
SET daily_limit = COALESCE(%(daily_limit)s, daily_limit),
    hourly_limit = CASE WHEN %(set_hourly)s THEN %(hourly_limit)s ELSE hourly_limit END,
    min_delay_ms = COALESCE(%(min_delay_ms)s, min_delay_ms),
    updated_at = now()
WHERE id = %(id)s
RETURNING id

-- ==== campaigns (HTTP API: mailer/campaigns.py, mailer/campaign_stats.py) ====

-- release_campaign_held_row --
-- A row this worker claimed whose mark was refused because its campaign was paused or
-- cancelled meanwhile: back to the queue untouched (resuming makes it claimable again), or
-- cancelled with its campaign.
UPDATE email_queue AS q
SET status = CASE WHEN held.state = 'cancelled' THEN 'cancelled' ELSE 'queued' END,
    last_error = CASE WHEN held.state = 'cancelled' THEN 'campaign cancelled'
                      ELSE q.last_error END,
    attempt_started_at = NULL, locked_by = NULL, locked_account_id = NULL, locked_until = NULL
FROM campaign_settings AS held
WHERE q.id = %(id)s AND q.locked_by = %(worker_id)s AND q.status = 'sending'
  AND q.attempt_started_at IS NULL
  AND held.campaign = q.campaign AND held.state <> 'active'

-- campaign_create --
-- A new campaign. A campaign_settings row that has no message yet (tracking switches set
-- by SQL, or a pause of rows inserted by SQL) is taken over, keeping its state; no row
-- back: the name is taken.
INSERT INTO campaign_settings (campaign, track_opens, track_clicks, message, api_key_id)
VALUES (%(name)s, %(track_opens)s, %(track_clicks)s, %(message)s, %(api_key_id)s)
ON CONFLICT (campaign) DO UPDATE
SET track_opens = COALESCE(EXCLUDED.track_opens, campaign_settings.track_opens),
    track_clicks = COALESCE(EXCLUDED.track_clicks, campaign_settings.track_clicks),
    message = EXCLUDED.message, api_key_id = EXCLUDED.api_key_id, updated_at = now()
WHERE campaign_settings.message IS NULL
RETURNING id, campaign AS name, state, state_changed_at, track_opens, track_clicks,
          message, created_at

-- campaign_get --
-- One campaign's settings row; a campaign only SQL ever queued (no settings row) comes
-- back as an active one without a message, for keys that see every row.
SELECT c.id, c.campaign AS name, c.state, c.state_changed_at, c.track_opens,
       c.track_clicks, c.message, c.created_at
FROM campaign_settings AS c
WHERE c.campaign = %(name)s
  AND (%(api_key_id)s::bigint IS NULL OR c.api_key_id = %(api_key_id)s)
UNION ALL
SELECT NULL, %(name)s, 'active', NULL, NULL, NULL, NULL, first.created_at
FROM (SELECT q.created_at FROM email_queue AS q WHERE q.campaign = %(name)s
      ORDER BY q.id LIMIT 1) AS first
WHERE %(api_key_id)s::bigint IS NULL
  AND NOT EXISTS (SELECT 1 FROM campaign_settings AS c WHERE c.campaign = %(name)s)

-- campaign_list --
-- Keyset pagination, newest first: campaigns with id below the cursor.
SELECT id, campaign AS name, state, state_changed_at, track_opens, track_clicks, message,
       created_at
FROM campaign_settings
WHERE (%(cursor)s::bigint IS NULL OR id < %(cursor)s)
  AND (%(api_key_id)s::bigint IS NULL OR api_key_id = %(api_key_id)s)
ORDER BY id DESC
LIMIT %(limit)s

-- campaign_set_state --
-- Pause, resume or cancel: only from one of %(from_states)s (the state the caller read),
-- so a concurrent change is refused instead of overwritten. A campaign of SQL-inserted
-- rows gets its settings row here.
INSERT INTO campaign_settings (campaign, state, state_changed_at)
VALUES (%(name)s, %(state)s, now())
ON CONFLICT (campaign) DO UPDATE
SET state = EXCLUDED.state, state_changed_at = now(), updated_at = now()
WHERE campaign_settings.state = ANY(%(from_states)s)
RETURNING id

-- wake_idle_workers --
-- Rows became claimable without an INSERT (a resumed campaign's; rows a worker gave back
-- when it stopped, backed off or reached a limit): wake idle workers (at commit), which
-- would otherwise find them at their next poll.
SELECT pg_notify('mailer_queue', '')

-- campaign_cancel_rows --
-- Every queued row of a cancelled campaign, in one UPDATE (rows in flight finish; a row
-- claimed but not yet marked is cancelled by its worker: release_campaign_held_row).
UPDATE email_queue AS q
SET status = 'cancelled', last_error = 'campaign cancelled'
WHERE q.campaign = %(name)s AND q.status = 'queued'
  AND (%(api_key_id)s::bigint IS NULL OR q.api_key_id = %(api_key_id)s)
  AND EXISTS (SELECT 1 FROM campaign_settings AS c
              WHERE c.campaign = %(name)s AND c.state = 'cancelled')

-- campaign_upload_timeout --
-- A CSV upload's COPY lasts as long as its body takes to arrive: its own statement
-- timeout, for this transaction only.
SELECT set_config('statement_timeout', %(milliseconds)s::text, true)

-- campaign_staging_create --
-- The recipients of one CSV upload, COPYed here first (dropped at commit).
CREATE TEMP TABLE campaign_staging (
    line_no    bigint NOT NULL,
    email      text NOT NULL,
    name       text,
    variables  jsonb NOT NULL
) ON COMMIT DROP

-- campaign_staging_copy --
COPY campaign_staging (line_no, email, name, variables) FROM STDIN

-- campaign_staging_insert --
-- One INSERT ... SELECT of the staged recipients: the first line of each address (case
-- insensitive), unless the address is suppressed or already in the campaign; each row gets
-- the campaign's message with the line's variables over the campaign's. Returns the counts.
WITH staged AS (
    SELECT DISTINCT ON (lower(s.email)) s.* FROM campaign_staging AS s
    ORDER BY lower(s.email), s.line_no
), present AS (
    SELECT DISTINCT lower(btrim(q.to_address)) AS email FROM email_queue AS q
    WHERE q.campaign = %(name)s
), checked AS (
    SELECT s.*, x.id IS NOT NULL AS suppressed, p.email IS NOT NULL AS present
    FROM staged AS s
    LEFT JOIN suppressions AS x
      ON lower(x.email) = lower(s.email) AND (x.expires_at IS NULL OR x.expires_at > now())
    LEFT JOIN present AS p ON p.email = lower(s.email)
), inserted AS (
    INSERT INTO email_queue (to_address, to_name, subject, html_body, text_body, template_id,
                             variables, headers, account_id, pool, campaign, priority,
                             scheduled_at, metadata, api_key_id)
    SELECT f.email, f.name, m.subject, m.html_body, m.text_body, m.template_id,
           COALESCE(m.variables, '{}') || f.variables, m.headers, m.account_id,
           COALESCE(m.pool, 'default'), c.campaign, COALESCE(m.priority, 0),
           COALESCE(m.scheduled_at, now()), COALESCE(m.metadata, '{}'), %(api_key_id)s
    FROM checked AS f
    CROSS JOIN campaign_settings AS c
    CROSS JOIN LATERAL jsonb_to_record(c.message) AS m(
        subject text, html_body text, text_body text, template_id bigint, variables jsonb,
        headers jsonb, account_id bigint, pool text, priority integer,
        scheduled_at timestamptz, metadata jsonb)
    WHERE c.campaign = %(name)s AND c.message IS NOT NULL AND c.state <> 'cancelled'
      AND NOT f.suppressed AND NOT f.present
    ORDER BY f.line_no
    RETURNING id
)
SELECT (SELECT count(*) FROM inserted) AS queued,
       (SELECT count(*) FROM checked WHERE suppressed) AS suppressed,
       (SELECT count(*) FROM campaign_staging) - (SELECT count(*) FROM staged)
       + (SELECT count(*) FROM checked WHERE present AND NOT suppressed) AS duplicates

-- campaign_stats --
-- One campaign's figures in one statement: its rows by status and their sends over time,
-- and their events: opens and clicks by unique recipient (suspected bots counted apart),
-- messages that bounced, drew a complaint or an unsubscribe, and the %(limit)s links
-- people clicked most (top_links, a JSON array). The rows come from an
-- index-only scan of email_queue_campaign_status_idx (0019; the rows of one API key only
-- when %(api_key_id)s is given, read from the table), their events from a hash join, and
-- recipients' addresses only for the people's opens and clicks: a 50,000-row campaign of
-- a 1,000,000-row queue in about 100 ms instead of 500 (bench, console figure).
WITH rows AS MATERIALIZED (
    SELECT q.id, q.status, q.sent_at FROM email_queue AS q
    WHERE q.campaign = %(name)s AND %(api_key_id)s::bigint IS NULL
    UNION ALL
    SELECT q.id, q.status, q.sent_at FROM email_queue AS q
    WHERE q.campaign = %(name)s AND %(api_key_id)s::bigint IS NOT NULL
      AND q.api_key_id = %(api_key_id)s
), events AS MATERIALIZED (
    SELECT e.type, e.suspected_bot, e.queue_id, e.data ? 'url' AS has_url, e.data->>'url' AS url
    FROM email_events AS e JOIN rows AS r ON r.id = e.queue_id
), people AS (
    SELECT ev.type, ev.has_url, ev.url, m.email FROM events AS ev
    CROSS JOIN LATERAL (SELECT lower(btrim(q.to_address)) AS email FROM email_queue AS q
                        WHERE q.id = ev.queue_id OFFSET 0) AS m
    WHERE ev.type IN ('open', 'click') AND NOT ev.suspected_bot
)
SELECT s.*, ev.*, p.*, links.* FROM (
    SELECT count(*) AS total,
           count(*) FILTER (WHERE status = 'queued') AS queued,
           count(*) FILTER (WHERE status = 'sending') AS sending,
           count(*) FILTER (WHERE status = 'sent') AS sent,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           count(*) FILTER (WHERE status = 'suppressed') AS suppressed,
           count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
           count(*) FILTER (WHERE status = 'sent' AND sent_at > now() - interval '5 minutes')
               AS sent_last_5_minutes,
           count(*) FILTER (WHERE status = 'sent' AND sent_at > now() - interval '60 minutes')
               AS sent_last_60_minutes,
           min(sent_at) AS first_sent_at, max(sent_at) AS last_sent_at
    FROM rows) AS s, (
    SELECT count(*) FILTER (WHERE type = 'open' AND NOT suspected_bot) AS opens,
           count(*) FILTER (WHERE type = 'open' AND suspected_bot) AS bot_opens,
           count(*) FILTER (WHERE type = 'click' AND NOT suspected_bot) AS clicks,
           count(*) FILTER (WHERE type = 'click' AND suspected_bot) AS bot_clicks,
           count(DISTINCT queue_id) FILTER (WHERE type = 'bounce') AS bounces,
           count(DISTINCT queue_id) FILTER (WHERE type = 'complaint') AS complaints,
           count(DISTINCT queue_id) FILTER (WHERE type = 'unsubscribe') AS unsubscribes
    FROM events) AS ev, (
    SELECT count(DISTINCT email) FILTER (WHERE type = 'open') AS unique_opens,
           count(DISTINCT email) FILTER (WHERE type = 'click') AS unique_clicks
    FROM people) AS p, (
    SELECT COALESCE(jsonb_agg(to_jsonb(l) ORDER BY l.unique_clicks DESC, l.clicks DESC, l.url),
                    '[]') AS top_links
    FROM (SELECT url, count(DISTINCT email) AS unique_clicks, count(*) AS clicks
          FROM people WHERE type = 'click' AND has_url
          GROUP BY url ORDER BY unique_clicks DESC, clicks DESC, url LIMIT %(limit)s) AS l
    ) AS links

-- ---------------------------------------------------------------------------------------
-- CLI: account validation, removal, Gmail and profile edits (mailer accounts add|edit|remove)

-- account_email_taken --
-- The account that already sends as this address on this backend (the unique index is on
-- lower(email), backend), checked before an INSERT so a duplicate burns no id.
SELECT id FROM sender_accounts WHERE lower(email) = lower(%(email)s) AND backend = %(backend)s

-- delete_account --
-- The 0006 trigger refuses while queued or sending rows are pinned to the account.
DELETE FROM sender_accounts WHERE id = %(account_id)s RETURNING id, email

-- edit_account_profile --
-- `mailer accounts edit`: display name, pool and (Gmail accounts only) the credentials;
-- NULL keeps a value.
UPDATE sender_accounts
SET display_name = COALESCE(%(display_name)s, display_name),
    pool = COALESCE(%(pool)s, pool),
    gmail_credentials_encrypted = COALESCE(%(gmail_credentials_encrypted)s,
                                           gmail_credentials_encrypted),
    gmail_project = COALESCE(%(gmail_project)s, gmail_project),
    updated_at = now()
WHERE id = %(account_id)s
  AND (%(gmail_credentials_encrypted)s::text IS NULL OR backend = 'gmail')
RETURNING *

-- ===== Recurring sends (issue 10): schedules, the elected scheduler, its occurrences =====
-- mailer/recurring.py (definitions, the API and the CLI) and mailer/recurring_scheduler.py.
-- A schedule is named by id or name (`ref`); `api_key_id` NULL sees every schedule.

-- insert_recurring_send --
-- NULL back: the name is taken.
INSERT INTO recurring_sends (name, kind, cron, timezone, payload, enabled, next_run_at,
                             api_key_id)
VALUES (%(name)s, %(kind)s, %(cron)s, %(timezone)s, %(payload)s, %(enabled)s,
        %(next_run_at)s, %(api_key_id)s)
ON CONFLICT (name) DO NOTHING
RETURNING *

-- get_recurring_send --
SELECT * FROM recurring_sends
WHERE (id::text = %(ref)s OR name = %(ref)s)
  AND (%(api_key_id)s::bigint IS NULL OR api_key_id = %(api_key_id)s)

-- list_recurring_sends --
-- By id, from the cursor on (keyset pagination).
SELECT * FROM recurring_sends
WHERE (%(cursor)s::bigint IS NULL OR id > %(cursor)s)
  AND (%(api_key_id)s::bigint IS NULL OR api_key_id = %(api_key_id)s)
ORDER BY id LIMIT %(limit)s

-- delete_recurring_send --
-- Queued rows stay queued; their link to the occurrence is cleared.
DELETE FROM recurring_sends
WHERE (id::text = %(ref)s OR name = %(ref)s)
  AND (%(api_key_id)s::bigint IS NULL OR api_key_id = %(api_key_id)s)
RETURNING id

-- pause_recurring_send --
UPDATE recurring_sends SET enabled = false, updated_at = now()
WHERE id = %(id)s AND enabled
RETURNING *

-- resume_recurring_send --
-- next_run_at was computed from this cron and zone: the guard keeps them the same.
UPDATE recurring_sends
SET enabled = true, next_run_at = %(next_run_at)s, last_error = NULL, updated_at = now()
WHERE id = %(id)s AND NOT enabled AND cron = %(cron)s AND timezone = %(timezone)s
RETURNING *

-- recurring_runs_of --
-- The latest occurrences of a schedule and the rows they queued.
-- (A campaign occurrence shows the campaign it created, not each of its rows.)
SELECT r.occurrence_at, r.missed, r.queued_at, r.campaign, q.id AS email_id, q.status
FROM recurring_runs AS r
LEFT JOIN email_queue AS q
       ON q.recurring_id = r.recurring_id AND q.recurring_at = r.occurrence_at
      AND r.campaign IS NULL
WHERE r.recurring_id = %(id)s
ORDER BY r.occurrence_at DESC, q.id
LIMIT %(limit)s

-- try_recurring_scheduler_lock --
-- One scheduler per database: a session advisory lock on its own connection.
SELECT pg_try_advisory_lock(734604, 1) AS locked

-- wait_recurring_scheduler_lock --
-- A standby waits for the lock (granted the moment the leader's session ends), for at
-- most the session's lock_timeout (then LockNotAvailable: it checks for a stop, waits again).
SELECT pg_advisory_lock(734604, 1)

-- set_lock_timeout --
SELECT set_config('lock_timeout', %(timeout)s, false)

-- listen_mailer_recurring --
LISTEN mailer_recurring

-- recurring_due --
-- Read outside the firing transaction; each is then taken with recurring_advance's guard.
-- Only kinds this scheduler can queue (an older version leaves newer kinds alone).
SELECT id, cron, timezone, next_run_at FROM recurring_sends
WHERE enabled AND next_run_at <= %(now)s AND kind = ANY(%(kinds)s)
ORDER BY next_run_at, id
LIMIT %(limit)s

-- recurring_next_due --
SELECT min(next_run_at) AS next_run_at FROM recurring_sends
WHERE enabled AND kind = ANY(%(kinds)s)

-- recurring_advance --
-- Take a due schedule: only if nobody moved it since it was read (the guard is in this
-- UPDATE's own WHERE, re-checked after a concurrent commit), and still enabled.
UPDATE recurring_sends
SET next_run_at = %(next_run_at)s, last_run_at = %(occurrence_at)s, last_error = NULL,
    updated_at = now()
WHERE id = %(id)s AND enabled AND next_run_at = %(expected)s
RETURNING id, kind, timezone, payload, api_key_id

-- recurring_record_run --
-- Nothing back: this occurrence was queued before (never queue it twice).
INSERT INTO recurring_runs (recurring_id, occurrence_at, missed)
VALUES (%(id)s, %(occurrence_at)s, %(missed)s)
ON CONFLICT (recurring_id, occurrence_at) DO NOTHING
RETURNING occurrence_at

-- recurring_queue_email --
-- The schedule's email row (payload: the columns check_email produced, resolved).
INSERT INTO email_queue (to_address, to_name, subject, html_body, text_body, template_id,
                         variables, headers, account_id, pool, campaign, priority, metadata,
                         transactional, track_opens, track_clicks, api_key_id,
                         recurring_id, recurring_at)
SELECT r.to_address, r.to_name, r.subject, r.html_body, r.text_body, r.template_id,
       r.variables, r.headers, r.account_id, COALESCE(r.pool, 'default'), r.campaign,
       COALESCE(r.priority, 0), COALESCE(r.metadata, '{}'), COALESCE(r.transactional, false),
       r.track_opens, r.track_clicks, %(api_key_id)s, %(id)s, %(occurrence_at)s
FROM jsonb_to_record(%(payload)s::jsonb) AS r(
    to_address text, to_name text, subject text, html_body text, text_body text,
    template_id bigint, variables jsonb, headers jsonb, account_id bigint, pool text,
    campaign text, priority integer, metadata jsonb, transactional boolean,
    track_opens boolean, track_clicks boolean)
RETURNING id

-- recurring_skip --
-- The occurrence could not be queued (a deleted template or account): keep the reason
-- and move on to the next occurrence.
UPDATE recurring_sends
SET next_run_at = %(next_run_at)s, last_error = %(error)s, updated_at = now()
WHERE id = %(id)s AND enabled AND next_run_at = %(expected)s

-- recurring_give_up --
-- The expression has no occurrence left: pause the schedule with the reason.
UPDATE recurring_sends SET enabled = false, last_error = %(error)s, updated_at = now()
WHERE id = %(id)s AND enabled AND next_run_at = %(expected)s

-- prune_recurring_runs_batch --
-- `mailer db prune`: occurrences queued before the cutoff whose rows were pruned (or
-- deleted). Safe for exactly-once: an occurrence is queued once it is past, and
-- next_run_at is always set to a time after the present, so it can never be due again.
WITH doomed AS (
    SELECT r.id FROM recurring_runs AS r
    WHERE r.id > %(after_id)s AND r.queued_at < %(cutoff)s
      AND NOT EXISTS (SELECT 1 FROM email_queue AS q
                      WHERE q.recurring_id = r.recurring_id
                        AND q.recurring_at = r.occurrence_at)
    ORDER BY r.id
    LIMIT %(batch)s
    FOR UPDATE OF r SKIP LOCKED
), gone AS (
    DELETE FROM recurring_runs AS r USING doomed WHERE r.id = doomed.id RETURNING r.id
)
SELECT count(*) AS deleted, max(id) AS last_id FROM gone
-- ==== admin console (/admin: tracking/admin, mailer/admin_*.py, mailer/console_queries.py) ====

-- admin_create_user --
INSERT INTO admin_users (email, password_hash) VALUES (%(email)s, %(password_hash)s)
ON CONFLICT DO NOTHING
RETURNING id, email

-- admin_set_password --
UPDATE admin_users SET password_hash = %(password_hash)s, updated_at = now()
WHERE lower(email) = lower(%(email)s)
RETURNING id, email

-- admin_user_by_email --
SELECT id, email, password_hash, disabled_at FROM admin_users
WHERE lower(email) = lower(%(email)s)

-- admin_login_failures --
-- Failed logins in the window, for this address and from this IP.
SELECT count(*) FILTER (WHERE lower(email) = lower(%(email)s)) AS by_email,
       count(*) FILTER (WHERE ip = %(ip)s) AS by_ip
FROM login_attempts
WHERE NOT succeeded AND created_at > now() - make_interval(secs => %(window_seconds)s)
  AND (lower(email) = lower(%(email)s) OR ip = %(ip)s)

-- admin_record_login_attempt --
INSERT INTO login_attempts (email, ip, succeeded) VALUES (%(email)s, %(ip)s, %(succeeded)s)

-- admin_prune_login_attempts --
DELETE FROM login_attempts WHERE created_at < now() - interval '1 day'

-- admin_create_session --
INSERT INTO admin_sessions (token_hash, user_id, csrf_token, ip, expires_at)
VALUES (%(token_hash)s, %(user_id)s, %(csrf_token)s, %(ip)s,
        now() + make_interval(secs => %(lifetime_seconds)s))

-- admin_delete_session --
DELETE FROM admin_sessions WHERE token_hash = %(token_hash)s

-- admin_prune_sessions --
DELETE FROM admin_sessions WHERE expires_at < now()

-- admin_session --
-- The live session of a token, with its user (not disabled).
SELECT s.user_id, s.csrf_token, u.email
FROM admin_sessions AS s JOIN admin_users AS u ON u.id = s.user_id
WHERE s.token_hash = %(token_hash)s AND s.expires_at > now() AND u.disabled_at IS NULL

-- admin_audit_insert --
INSERT INTO admin_audit_log (admin_user_id, admin_email, action, target, before, after, ip)
VALUES (%(admin_user_id)s, %(admin_email)s, %(action)s, %(target)s, %(before)s, %(after)s,
        %(ip)s)
RETURNING id

-- admin_audit_page --
-- Newest first, keyset pagination below %(cursor)s.
SELECT id, admin_email, action, target, before, after, ip, created_at
FROM admin_audit_log
WHERE (%(cursor)s::bigint IS NULL OR id < %(cursor)s)
ORDER BY id DESC
LIMIT %(limit)s

-- console_account_usage --
-- account_usage for a page of accounts (id above %(cursor)s, at most %(limit)s; NULL:
-- all) or one (%(id)s): the view's counts run only for the accounts returned.
SELECT * FROM account_usage
WHERE (%(id)s::bigint IS NULL OR id = %(id)s)
  AND (%(cursor)s::bigint IS NULL OR id > %(cursor)s)
ORDER BY id
LIMIT %(limit)s

-- console_sends_per_minute --
-- Counted sends per minute over the last 24 h (minutes without a send are absent).
SELECT date_trunc('minute', created_at) AS minute, count(*) AS sends
FROM send_logs
WHERE counted AND created_at > now() - interval '24 hours'
GROUP BY 1
ORDER BY 1

-- console_live_counters --
-- What the overview polls: sends in the last minute and hour.
SELECT count(*) FILTER (WHERE created_at > now() - interval '1 minute') AS sent_last_minute,
       count(*) AS sent_last_hour
FROM send_logs
WHERE counted AND created_at > now() - interval '1 hour'

-- console_recent_errors --
-- The latest failed attempts (any outcome but sent).
SELECT l.id, l.queue_id, l.account_id, a.email AS account_email, l.outcome, l.code,
       l.response, l.created_at
FROM send_logs AS l LEFT JOIN sender_accounts AS a ON a.id = l.account_id
WHERE l.outcome <> 'sent'
ORDER BY l.id DESC
LIMIT %(limit)s

-- console_search_messages --
-- Message search, newest first, keyset pagination on id below %(cursor)s. Every filter
-- is optional; the address matches case-insensitively (email_queue_to_lower_idx).
SELECT q.id, q.to_address, q.to_name, q.subject, q.status, q.campaign, q.pool, q.attempts,
       q.message_id, q.last_error, q.created_at, q.sent_at
FROM email_queue AS q
WHERE (%(cursor)s::bigint IS NULL OR q.id < %(cursor)s)
  AND (%(to)s::text IS NULL OR lower(q.to_address) = lower(%(to)s))
  AND (%(campaign)s::text IS NULL OR q.campaign = %(campaign)s)
  AND (%(status)s::text IS NULL OR q.status = %(status)s)
  AND (%(message_id)s::text IS NULL OR q.message_id = %(message_id)s)
  AND (%(since)s::timestamptz IS NULL OR q.created_at >= %(since)s)
  AND (%(until)s::timestamptz IS NULL OR q.created_at < %(until)s)
ORDER BY q.id DESC
LIMIT %(limit)s

-- console_message --
-- One row with its template's parts (what the renderer needs) and account addresses.
SELECT q.*, t.subject AS template_subject, t.html_body AS template_html_body,
       t.text_body AS template_text_body, a.email AS sent_by_email
FROM email_queue AS q
LEFT JOIN templates AS t ON t.id = q.template_id
LEFT JOIN sender_accounts AS a ON a.id = q.sent_by_account_id
WHERE q.id = %(id)s

-- console_message_attempts --
SELECT l.id, l.account_id, a.email AS account_email, l.outcome, l.code, l.response,
       l.duration_ms, l.created_at
FROM send_logs AS l LEFT JOIN sender_accounts AS a ON a.id = l.account_id
WHERE l.queue_id = %(id)s
ORDER BY l.id

-- console_message_bounces --
SELECT id, kind, subject, raw, received_at
FROM bounce_messages WHERE id = ANY(%(ids)s)
ORDER BY id

-- console_message_account --
-- The account a row's preview is rendered as: the one that sent it, else its pinned one,
-- else an account of its pool.
SELECT a.* FROM sender_accounts AS a
WHERE a.id = %(sent_by)s OR a.id = %(account_id)s OR a.pool = %(pool)s
ORDER BY (a.id = %(sent_by)s) DESC NULLS LAST, (a.id = %(account_id)s) DESC NULLS LAST, a.id
LIMIT 1

-- console_cancel_messages --
-- Cancel the queued rows among %(ids)s (the others are left as they are).
UPDATE email_queue SET status = 'cancelled', last_error = %(reason)s
WHERE id = ANY(%(ids)s) AND status = 'queued'
RETURNING id

-- console_retry_messages --
-- Queue again the failed rows among %(ids)s, with fresh attempts.
UPDATE email_queue
SET status = 'queued', attempts = 0, next_attempt_at = NULL, scheduled_at = now(),
    last_error = %(reason)s || COALESCE(last_error, 'no error recorded')
WHERE id = ANY(%(ids)s) AND status = 'failed'
RETURNING id

-- console_bounce_raw --
SELECT b.id, b.kind, b.subject, b.decisions, b.received_at, b.account_id,
       a.email AS account_email, b.raw
FROM bounce_messages AS b LEFT JOIN sender_accounts AS a ON a.id = b.account_id
WHERE b.id = %(id)s

-- console_campaign_recipients --
-- Who opened, clicked or bounced (%(type)s), first time, bots left out.
SELECT q.to_address AS email, q.to_name AS name, q.id AS queue_id,
       min(e.created_at) AS first_at, count(*) AS events
FROM email_queue AS q JOIN email_events AS e ON e.queue_id = q.id
WHERE q.campaign = %(campaign)s AND e.type = %(type)s AND NOT e.suspected_bot
GROUP BY q.id
ORDER BY q.id

-- ---------------------------------------------------------------------------------------
-- Issue 10 follow-ups: personal data (export and erase one address), webhook leftovers.

-- Personal data (mailer/contacts.py): %(email)s is compared trimmed and lowercased, like
-- suppressions. Rows are found through email_queue_to_lower_idx, and those stored with
-- spaces around the address through email_queue_untrimmed_to_idx (migration 0021).

-- contact_emails --
SELECT id, to_address, to_name, subject, html_body, text_body, template_id, variables,
       headers, account_id, pool, campaign, priority, scheduled_at, status, attempts,
       max_attempts, next_attempt_at, last_error, message_id, sent_by_account_id, sent_at,
       idempotency_key, metadata, transactional, track_opens, track_clicks, api_key_id,
       created_at
FROM email_queue
WHERE (lower(to_address) = lower(btrim(%(email)s))
       OR (to_address <> btrim(to_address)
           AND lower(btrim(to_address)) = lower(btrim(%(email)s))))
ORDER BY id

-- contact_attempts --
SELECT id, queue_id, account_id, outcome, code, response, duration_ms, created_at
FROM send_logs WHERE queue_id = ANY(%(ids)s::bigint[]) ORDER BY id

-- contact_events --
-- Events of the address's rows, and bounce/complaint/delivery reports naming it that
-- matched no row.
SELECT id, queue_id, account_id, type, data, suspected_bot, created_at
FROM email_events WHERE queue_id = ANY(%(ids)s::bigint[])
UNION
SELECT id, queue_id, account_id, type, data, suspected_bot, created_at
FROM email_events
WHERE type IN ('bounce', 'complaint', 'delivery')
  AND lower(btrim(data->>'recipient')) = lower(btrim(%(email)s))
ORDER BY id

-- contact_suppressions --
SELECT id, email, reason, source, created_at, expires_at FROM suppressions
WHERE lower(email) = lower(btrim(%(email)s))

-- contact_bounce_reports --
-- Stored bounce and complaint reports with a decision about the address or its rows.
SELECT id, account_id, kind, subject, decisions, raw, received_at
FROM bounce_messages AS b
WHERE EXISTS (
    SELECT 1 FROM jsonb_array_elements(
        CASE WHEN jsonb_typeof(b.decisions) = 'array' THEN b.decisions ELSE '[]' END) AS d
    WHERE lower(btrim(d->>'address')) = lower(btrim(%(email)s))
       OR (jsonb_typeof(d->'queue_id') = 'number'
           AND (d->>'queue_id')::numeric = ANY(%(ids)s::bigint[])))
ORDER BY id

-- contact_webhook_deliveries --
-- Outbound webhook events about the address's rows.
SELECT id, webhook_id, endpoint_id, event_type, status, attempts, payload, created_at,
       delivered_at
FROM webhook_deliveries
WHERE jsonb_typeof(payload->'data'->'email_id') = 'number'
  AND (payload->'data'->>'email_id')::numeric = ANY(%(ids)s::bigint[])
ORDER BY id

-- contact_erased_at --
SELECT erased_at FROM erased_contacts WHERE email_hash = mailer_email_hash(%(email)s)

-- contact_mark_erased --
-- From its commit on, the claim flags the address's rows and the mark refuses them.
INSERT INTO erased_contacts (email_hash) VALUES (mailer_email_hash(%(email)s))
ON CONFLICT (email_hash) DO NOTHING

-- contact_cancel_queued --
UPDATE email_queue
SET status = 'cancelled', last_error = 'cancelled: the contact was erased'
WHERE (lower(to_address) = lower(btrim(%(email)s))
       OR (to_address <> btrim(to_address)
           AND lower(btrim(to_address)) = lower(btrim(%(email)s))))
  AND status = 'queued'
RETURNING id

-- contact_erase_rows --
-- Keep each row (its send_logs count against the account's limits) without anything
-- personal: the address becomes a placeholder that is itself erased (migration 0015).
UPDATE email_queue
SET to_address = 'erased@erased.invalid', to_name = NULL,
    subject = CASE WHEN template_id IS NULL THEN '[erased]' END,
    html_body = NULL, text_body = CASE WHEN template_id IS NULL THEN '' END,
    variables = NULL, headers = NULL, metadata = '{}'::jsonb,
    last_error = mailer_scrub_address(last_error, btrim(%(email)s))
WHERE id = ANY(%(ids)s::bigint[])

-- contact_erase_attempts --
UPDATE send_logs SET response = mailer_scrub_address(response, btrim(%(email)s))
WHERE queue_id = ANY(%(ids)s::bigint[]) AND response IS NOT NULL

-- contact_erase_events --
-- No IP address, user agent or raw report is kept; the address becomes [erased].
UPDATE email_events
SET data = mailer_scrub_address(
        (data - ARRAY['ip', 'user_agent', 'raw'])::text, btrim(%(email)s))::jsonb
WHERE id = ANY(%(event_ids)s::bigint[])

-- contact_erase_bounce_reports --
UPDATE bounce_messages
SET raw = ''::bytea, subject = NULL,
    decisions = mailer_scrub_address(decisions::text, btrim(%(email)s))::jsonb
WHERE id = ANY(%(report_ids)s::bigint[])

-- contact_erase_webhook_deliveries --
WITH scrubbed AS (
    UPDATE webhook_deliveries
    SET payload = jsonb_set(
            mailer_scrub_address(
                (payload #- '{data,details,ip}' #- '{data,details,user_agent}')::text,
                btrim(%(email)s))::jsonb,
            '{data,metadata}', '{}'::jsonb, false)
    WHERE id = ANY(%(delivery_ids)s::bigint[])
    RETURNING id
)
UPDATE webhook_attempts
SET response_excerpt = mailer_scrub_address(response_excerpt, btrim(%(email)s))
WHERE delivery_id IN (SELECT id FROM scrubbed) AND response_excerpt IS NOT NULL

-- contact_erase_suppressions --
DELETE FROM suppressions WHERE lower(email) = lower(btrim(%(email)s))

-- contact_audit --
INSERT INTO contact_audit (action, email_hash, actor, counts)
VALUES (%(action)s, mailer_email_hash(%(email)s), %(actor)s, %(counts)s::jsonb)
RETURNING id, email_hash, at

-- Webhook leftovers.

-- webhook_next_due_seconds --
-- Seconds until the earliest pending delivery of an enabled endpoint falls due (NULL: none
-- pending; 0 or less: one is due now). The sender sleeps that long at most.
SELECT EXTRACT(epoch FROM min(d.next_attempt_at) - now())::float8 AS seconds
FROM webhook_deliveries AS d
JOIN webhook_endpoints AS e ON e.id = d.endpoint_id
WHERE d.status = 'pending' AND e.enabled


-- ===== Recurring campaigns (issue 10): a campaign created and queued per occurrence =====
-- mailer/recurring_scheduler.py (_queue_campaign); the campaign itself is created with
-- campaign_create, in the same transaction as the occurrence's recurring_runs row.

-- recurring_queue_campaign --
-- Every recipient of the schedule's campaign (payload: {message, recipients}), each once
-- (the first of an address, case insensitive), in recipient order, in one statement.
INSERT INTO email_queue (to_address, to_name, subject, html_body, text_body, template_id,
                         variables, headers, account_id, pool, campaign, priority, metadata,
                         api_key_id, recurring_id, recurring_at)
SELECT r.to_address, r.to_name, r.subject, r.html_body, r.text_body, r.template_id,
       r.variables, r.headers, r.account_id, COALESCE(r.pool, 'default'), %(campaign)s,
       COALESCE(r.priority, 0), COALESCE(r.metadata, '{}'), %(api_key_id)s, %(id)s,
       %(occurrence_at)s
FROM (SELECT DISTINCT ON (lower(btrim(e.item->>'to_address'))) e.item, e.n
      FROM jsonb_array_elements(%(payload)s::jsonb->'recipients') WITH ORDINALITY AS e(item, n)
      ORDER BY lower(btrim(e.item->>'to_address')), e.n) AS one,
     jsonb_to_record((%(payload)s::jsonb->'message') || one.item) AS r(
    to_address text, to_name text, subject text, html_body text, text_body text,
    template_id bigint, variables jsonb, headers jsonb, account_id bigint, pool text,
    priority integer, metadata jsonb)
ORDER BY one.n
RETURNING id

-- recurring_run_campaign --
-- The campaign an occurrence created, shown with the schedule's runs.
UPDATE recurring_runs SET campaign = %(campaign)s
WHERE recurring_id = %(id)s AND occurrence_at = %(occurrence_at)s

-- Console figures at 1,000,000 rows (migration 0019, mailer/console_snapshots.py): the
-- states a user acts on (queued, sending) counted exactly through partial indexes, the
-- rest read from console_snapshots, refreshed in the background under an advisory lock.

-- console_active_counts --
-- Queued and sending rows, exactly: index-only scans of the partial indexes the worker
-- already keeps (email_queue_due_account_idx, _due_pool_idx, _leases_idx).
SELECT (SELECT count(*) FROM email_queue WHERE status = 'queued' AND account_id IS NOT NULL)
     + (SELECT count(*) FROM email_queue WHERE status = 'queued' AND account_id IS NULL)
           AS queued,
       (SELECT count(*) FROM email_queue WHERE status = 'sending') AS sending

-- console_snapshot_get --
SELECT name, figures, refreshed_at, refresh_ms,
       extract(epoch FROM now() - refreshed_at)::double precision AS age_seconds
FROM console_snapshots WHERE name = %(name)s

-- console_snapshot_lock --
-- One refresher per snapshot across every web process; held to the end of the transaction.
SELECT pg_try_advisory_xact_lock(hashtextextended('mailer console snapshot ' || %(name)s, 0))
           AS locked

-- console_snapshot_timeout --
-- A recount may outlast the web app's statement timeout (to the end of its transaction).
SELECT set_config('statement_timeout', %(ms)s, true)

-- console_snapshot_timed --
UPDATE console_snapshots SET refresh_ms = %(ms)s WHERE name = %(name)s

-- console_snapshot_queue_counts --
-- Every row by state (one read of the whole queue).
INSERT INTO console_snapshots AS s (name, figures, refreshed_at)
SELECT 'queue_counts', COALESCE(jsonb_object_agg(c.status, c.n), '{}'), now()
FROM (SELECT status, count(*) AS n FROM email_queue GROUP BY status) AS c
ON CONFLICT (name) DO UPDATE SET figures = excluded.figures, refreshed_at = excluded.refreshed_at

-- console_snapshot_campaigns --
-- Every campaign's rows in finished states, newest campaign first (at most %(limit)s).
INSERT INTO console_snapshots AS s (name, figures, refreshed_at)
SELECT 'campaigns', COALESCE(jsonb_agg(to_jsonb(c) ORDER BY c.newest_id DESC), '[]'), now()
FROM (
    SELECT q.campaign, max(q.id) AS newest_id,
           count(*) FILTER (WHERE q.status = 'sent') AS sent,
           count(*) FILTER (WHERE q.status = 'failed') AS failed,
           count(*) FILTER (WHERE q.status = 'suppressed') AS suppressed,
           count(*) FILTER (WHERE q.status = 'cancelled') AS cancelled,
           max(q.sent_at) AS last_sent_at
    FROM email_queue AS q WHERE q.campaign IS NOT NULL
    GROUP BY q.campaign ORDER BY max(q.id) DESC LIMIT %(limit)s
) AS c
ON CONFLICT (name) DO UPDATE SET figures = excluded.figures, refreshed_at = excluded.refreshed_at

-- console_campaigns_live --
-- The named campaigns' queued and sending rows (exact, email_queue_campaign_status_idx)
-- and their settings' state.
SELECT n.campaign,
       (SELECT count(*) FROM email_queue AS q
         WHERE q.campaign = n.campaign AND q.status IN ('queued', 'sending')) AS pending,
       COALESCE((SELECT c.state FROM campaign_settings AS c WHERE c.campaign = n.campaign),
                'active') AS state
FROM unnest(%(names)s::text[]) AS n(campaign)

-- ==== many hosts: placement of accounts on orchestrators (orchestrator/placement.py) ====

-- host_heartbeat --
-- Register this orchestrator, or renew its heartbeat (and its cap).
INSERT INTO worker_hosts AS h (host_id, hostname, pid, max_accounts)
VALUES (%(host_id)s, %(hostname)s, %(pid)s, %(max_accounts)s)
ON CONFLICT (host_id) DO UPDATE
SET hostname = EXCLUDED.hostname, pid = EXCLUDED.pid, max_accounts = EXCLUDED.max_accounts,
    heartbeat_at = now(),
    started_at = CASE WHEN h.pid = EXCLUDED.pid AND h.hostname = EXCLUDED.hostname
                      THEN h.started_at ELSE now() END

-- live_hosts --
-- Hosts whose heartbeat is fresher than %(dead_seconds)s, and their caps.
SELECT host_id, max_accounts FROM worker_hosts
WHERE heartbeat_at > now() - make_interval(secs => %(dead_seconds)s)
ORDER BY host_id

-- account_placements --
SELECT account_id, host_id FROM account_placements ORDER BY account_id

-- claim_placements --
-- Place the accounts %(ids)s on this host: each only if it is unplaced or its host's
-- heartbeat is older than %(dead_seconds)s (checked on the row the UPDATE changes, so two
-- hosts never both win one account). Returns the accounts won.
INSERT INTO account_placements AS p (account_id, host_id)
SELECT a.id, %(host_id)s FROM sender_accounts AS a
WHERE a.id = ANY(%(ids)s::bigint[]) AND a.status = 'active'
ON CONFLICT (account_id) DO UPDATE
SET host_id = EXCLUDED.host_id, placed_at = now()
WHERE p.host_id <> EXCLUDED.host_id
  AND NOT EXISTS (
      SELECT 1 FROM worker_hosts AS h
      WHERE h.host_id = p.host_id
        AND h.heartbeat_at > now() - make_interval(secs => %(dead_seconds)s))
RETURNING p.account_id

-- release_placements --
-- Give back the accounts %(ids)s this host placed on itself (their workers have exited).
DELETE FROM account_placements
WHERE host_id = %(host_id)s AND account_id = ANY(%(ids)s::bigint[])

-- leave_hosts --
-- A host stopping cleanly: its placements and its row go, so others take over at once.
WITH gone AS (DELETE FROM account_placements WHERE host_id = %(host_id)s)
DELETE FROM worker_hosts WHERE host_id = %(host_id)s AND pid = %(pid)s

-- forget_dead_hosts --
-- Hosts dead for an hour with no placement left are forgotten.
DELETE FROM worker_hosts AS h
WHERE h.heartbeat_at < now() - interval '1 hour'
  AND NOT EXISTS (SELECT 1 FROM account_placements AS p WHERE p.host_id = h.host_id)

-- status_hosts --
-- `mailer status`: every registered host, whether it is alive, and its accounts.
SELECT h.host_id, h.hostname, h.pid, h.max_accounts, h.started_at, h.heartbeat_at,
       h.heartbeat_at > now() - make_interval(secs => %(dead_seconds)s) AS alive,
       (SELECT count(*) FROM account_placements AS p WHERE p.host_id = h.host_id) AS accounts
FROM worker_hosts AS h
ORDER BY h.host_id

-- status_placements --
-- `mailer status`: the host each account is placed on (accounts without a row have none).
SELECT account_id, host_id FROM account_placements

-- ==== retention at scale: day partitions of send_logs and email_events (migration 0020) ====

-- ensure_partitions --
-- Create the day partitions of send_logs and email_events up to 7 days ahead (the
-- orchestrator's housekeeping and `mailer db prune` run it; a DEFAULT partition catches
-- any row meanwhile).
SELECT ensure_partitions(interval '7 days') AS created

-- drop_partitions_before --
-- Drop the day partitions wholly older than %(cutoff)s; per table, partitions dropped,
-- their rows, and partitions left busy (to retry).
SELECT parent, partitions, rows_dropped, busy FROM drop_partitions_before(%(cutoff)s)

-- ---------------------------------------------------------------------------------------
-- Throughput (issue 12): the worker's hot path.

-- mark_in_flight --
-- Mark the rows about to be sent (%(in_flight_ids)s: the next one, and those marked ahead
-- of their turn, see mailer/lookahead.py) as in flight, each using up one of its
-- attempts: the statement every send (or every few sends) runs, so it does nothing else.
-- It changes a row only if this worker still leases it, its address is not suppressed
-- (nor erased), its campaign is not paused or cancelled, and the account is active with
-- exactly the limits the worker applies (%(daily_limit)s, %(hourly_limit)s,
-- %(min_delay_ms)s): a limit an admin changed is binding from its commit. Every guard sits
-- in the UPDATE's own WHERE, so it holds on the row version the UPDATE actually changes
-- (a concurrent recovery that commits first makes it fail). The worker sends a row only
-- if it comes back; otherwise unmarked_reason says why not.
UPDATE email_queue AS q
SET attempts = q.attempts + 1, attempt_started_at = now()
WHERE q.id = ANY(%(in_flight_ids)s::bigint[]) AND q.locked_by = %(worker_id)s
  AND q.status = 'sending'
  AND NOT EXISTS (
      SELECT 1 FROM suppressions AS s
      WHERE lower(s.email) = lower(btrim(q.to_address))
        AND (s.expires_at IS NULL OR s.expires_at > now()))
  AND NOT EXISTS (
      SELECT 1 FROM erased_contacts AS e WHERE e.email_hash = mailer_email_hash(q.to_address))
  AND EXISTS (
      SELECT 1 FROM sender_accounts AS a
      WHERE a.id = %(account_id)s AND a.status = 'active'
        AND a.daily_limit = %(daily_limit)s::int
        AND a.hourly_limit IS NOT DISTINCT FROM %(hourly_limit)s::int
        AND a.min_delay_ms = %(min_delay_ms)s::int)
  -- campaigns (0013): a campaign paused or cancelled since the claim is not sent
  AND NOT EXISTS (SELECT 1 FROM campaign_settings AS held
                  WHERE held.campaign = q.campaign AND held.state <> 'active')
RETURNING q.id

-- unmarked_reason --
-- Why mark_in_flight did not mark row %(in_flight_id)s (asked only then): the address is
-- suppressed, or the account is no longer active with exactly the limits the worker
-- applies; neither means the lease was lost.
SELECT COALESCE(
           (SELECT s.reason FROM email_queue AS q JOIN suppressions AS s
              ON lower(s.email) = lower(btrim(q.to_address))
             AND (s.expires_at IS NULL OR s.expires_at > now())
            WHERE q.id = %(in_flight_id)s LIMIT 1),
           (SELECT 'erased' FROM email_queue AS q JOIN erased_contacts AS e
              ON e.email_hash = mailer_email_hash(q.to_address)
            WHERE q.id = %(in_flight_id)s)) AS suppression_reason,
       NOT EXISTS (
           SELECT 1 FROM sender_accounts AS a
           WHERE a.id = %(account_id)s AND a.status = 'active'
             AND a.daily_limit = %(daily_limit)s::int
             AND a.hourly_limit IS NOT DISTINCT FROM %(hourly_limit)s::int
             AND a.min_delay_ms = %(min_delay_ms)s::int) AS account_changed,
       -- campaigns (0013)
       EXISTS (SELECT 1 FROM email_queue AS q JOIN campaign_settings AS held
                 ON held.campaign = q.campaign AND held.state <> 'active'
               WHERE q.id = %(in_flight_id)s) AS campaign_held

-- unmark_in_flight --
-- Rows (%(ids)s) the worker marked in flight ahead of their turn (while an earlier message
-- was on the wire, see mailer/lookahead.py) that it will not send on that mark: each
-- one's attempt is given back and it stays leased to the worker.
UPDATE email_queue
SET attempts = attempts - 1, attempt_started_at = NULL
WHERE id = ANY(%(ids)s::bigint[]) AND locked_by = %(worker_id)s AND status = 'sending'
  AND attempt_started_at IS NOT NULL

-- Connections: the orchestrator holds its workers' account locks on one session.

-- try_account_locks --
-- try_account_lock for many accounts in one statement (an orchestrator starting its
-- workers): whether this session now holds each one's lock. Call it only for accounts
-- the session does not hold yet (a session lock taken twice must be released twice).
SELECT id AS account_id, pg_try_advisory_lock(734602, id) AS locked
FROM unnest(%(account_ids)s::int[]) AS id

-- release_account_lock --
-- The orchestrator reaped the account's worker: let another host (or worker) take it.
SELECT pg_advisory_unlock(734602, %(account_id)s::int) AS released

-- Idle workers cost nothing: the orchestrator proves its idle workers alive and wakes
-- them when rows become due (orchestrator/idle_workers.py).

-- orchestrator_workers_alive --
-- The orchestrator's running children are alive (it reaps them): one UPDATE for all, so
-- an idle worker need not beat.
UPDATE workers SET heartbeat_at = now()
WHERE hostname = %(hostname)s AND pid = ANY(%(pids)s::int[])

-- orchestrator_due_accounts --
-- Which of %(account_ids)s have a row they could claim now, of their own or of their pool
-- (a retry or a requeued row becomes due without a NOTIFY); each probe is one index scan.
WITH mine AS (
    SELECT id, pool FROM sender_accounts WHERE id = ANY(%(account_ids)s::bigint[])
), due_pools AS (
    SELECT p.pool FROM (SELECT DISTINCT pool FROM mine) AS p
    WHERE EXISTS (SELECT 1 FROM email_queue AS q
                  WHERE q.status = 'queued' AND q.account_id IS NULL AND q.pool = p.pool
                    AND q.due_at <= now()
                    AND NOT EXISTS (SELECT 1 FROM campaign_settings AS held
                                    WHERE held.campaign = q.campaign AND held.state <> 'active'))
)
SELECT m.id AS account_id FROM mine AS m
WHERE m.pool IN (SELECT pool FROM due_pools)
   OR EXISTS (SELECT 1 FROM email_queue AS q
              WHERE q.status = 'queued' AND q.account_id = m.id AND q.due_at <= now()
                AND NOT EXISTS (SELECT 1 FROM campaign_settings AS held
                                WHERE held.campaign = q.campaign AND held.state <> 'active'))
