-- Many hosts and retention at scale (issue 12). Old inserts keep working unchanged.

-- == Hosts ==================================================================
-- Every orchestrator (`mailer run`) registers here and beats every pass of its loop
-- (at least every MAILER_ORCHESTRATOR_POLL_SECONDS). A host whose heartbeat is older
-- than MAILER_HOST_DEAD_SECONDS is dead: the live ones take its accounts.
CREATE TABLE worker_hosts (
    host_id       text PRIMARY KEY CONSTRAINT worker_hosts_host_id_not_empty CHECK (host_id <> ''),
    hostname      text NOT NULL,
    pid           integer NOT NULL,
    -- MAILER_MAX_ACCOUNTS_PER_HOST; NULL = no cap
    max_accounts  integer CONSTRAINT worker_hosts_max_accounts_not_negative
                  CHECK (max_accounts >= 0),
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now()
);

-- Which host runs which account (orchestrator/placement.py). One row per placed account;
-- an account without a row, or whose host is dead, is free for any live host to claim.
-- The account's advisory lock still guarantees one sender per account.
CREATE TABLE account_placements (
    account_id  bigint PRIMARY KEY REFERENCES sender_accounts (id) ON DELETE CASCADE,
    host_id     text NOT NULL,
    placed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX account_placements_host_idx ON account_placements (host_id);

-- == Retention at scale: send_logs and email_events partitioned by day ========
-- Both tables become RANGE partitioned on created_at, one partition per UTC day
-- (<table>_pYYYYMMDD), plus a DEFAULT partition (<table>_default) so an insert never
-- fails for want of a partition. `mailer db prune` drops whole days past retention
-- instead of deleting their rows. Columns, their order, defaults, checks, the foreign
-- keys to sender_accounts, the webhook trigger and the ids (same sequences) are
-- unchanged; every old INSERT works as before. The foreign keys to email_queue (ON
-- DELETE CASCADE) go: a cascade into a partitioned table probes every partition for
-- every deleted queue row (measured: pruning 500,000 queue rows took 430 s instead of
-- 4.5 s with 98 day partitions). A log or event outlives its queue row by at most the
-- retention (its day is dropped then); no code deletes queue rows but `mailer db
-- prune`, and such a log is still history (metrics count it, and so do the limits while
-- it is within 24 hours). The primary keys become (id, created_at) and the attempt_id
-- unique index (attempt_id, created_at): a partitioned table's unique keys include its
-- partition key (a replayed journal writes an attempt with the same attempted_at, so
-- it still conflicts). Every existing row is copied into its day's partition.

-- One day's partition of `parent` (send_logs or email_events), attached if missing.
-- Rows the DEFAULT partition caught for that day move into it first. ATTACH takes a
-- SHARE UPDATE EXCLUSIVE lock on the parent: inserts and reads go on meanwhile.
CREATE FUNCTION mailer_create_partition(parent text, day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    name text := parent || '_p' || to_char(day, 'YYYYMMDD');
    lo timestamptz := day::timestamp AT TIME ZONE 'UTC';
    hi timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                   name, parent);
    EXECUTE format('ALTER TABLE %I SET (autovacuum_vacuum_insert_scale_factor = 0.05, '
                   'autovacuum_analyze_scale_factor = 0.02)', name);
    EXECUTE format('WITH moved AS (DELETE FROM %I WHERE created_at >= $1 AND created_at < $2 '
                   'RETURNING *) INSERT INTO %I SELECT * FROM moved', parent || '_default', name)
        USING lo, hi;
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   parent, name, lo, hi);
    RETURN true;
END $$;

-- Partitions of send_logs and email_events from today (UTC) to now() + `ahead`; returns
-- how many it created. Run at migrate, by every orchestrator (with its housekeeping)
-- and by `mailer db prune`; concurrent calls take turns. Attaching locks the DEFAULT
-- partition: a day whose lock is not granted within 200 ms (queries reading every
-- partition hold it briefly) is left for the next call, days ahead of need.
CREATE FUNCTION ensure_partitions(ahead interval DEFAULT interval '7 days') RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    parent text;
    day date;
    created integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(734618, 1);  -- 734602: account locks, 734603: bounce reader
    FOREACH parent IN ARRAY ARRAY['send_logs', 'email_events'] LOOP
        day := (now() AT TIME ZONE 'UTC')::date;
        WHILE day <= ((now() + ahead) AT TIME ZONE 'UTC')::date LOOP
            BEGIN
                SET LOCAL lock_timeout = '200ms';
                IF mailer_create_partition(parent, day) THEN
                    created := created + 1;
                END IF;
            EXCEPTION WHEN lock_not_available THEN
                RAISE NOTICE 'partition of % for % is busy; left for the next call', parent, day;
            END;
            day := day + 1;
        END LOOP;
    END LOOP;
    RETURN created;
END $$;

-- Drop the day partitions of send_logs and email_events that end at or before `cutoff`
-- (every row in them is older); returns, per table, the partitions dropped, the rows
-- they held and the partitions left `busy`. Dropping a partition locks its parent
-- exclusively: a partition whose locks are not granted within 200 ms (inserts and
-- queries hold them briefly; a waiting drop stalls them meanwhile) is left busy, for the
-- caller to retry. Rows past the cutoff in younger partitions and in the DEFAULT one
-- are deleted by the caller, in batches.
CREATE FUNCTION drop_partitions_before(cutoff timestamptz)
RETURNS TABLE (parent text, partitions integer, rows_dropped bigint, busy integer)
LANGUAGE plpgsql AS $$
DECLARE
    part record;
    n bigint;
BEGIN
    FOREACH parent IN ARRAY ARRAY['send_logs', 'email_events'] LOOP
        partitions := 0;
        rows_dropped := 0;
        busy := 0;
        FOR part IN
            SELECT c.relname FROM pg_inherits AS i
            JOIN pg_class AS c ON c.oid = i.inhrelid
            WHERE i.inhparent = parent::regclass
              AND c.relname ~ ('^' || parent || '_p[0-9]{8}$')
              AND (to_date(right(c.relname, 8), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC'
                  <= cutoff
            ORDER BY c.relname
        LOOP
            BEGIN
                SET LOCAL lock_timeout = '200ms';
                EXECUTE format('SELECT count(*) FROM %I', part.relname) INTO n;
                EXECUTE format('DROP TABLE %I', part.relname);
                partitions := partitions + 1;
                rows_dropped := rows_dropped + n;
            EXCEPTION WHEN lock_not_available THEN
                busy := busy + 1;
            END;
        END LOOP;
        RETURN NEXT;
    END LOOP;
END $$;

-- Rebuild `parent` (send_logs or email_events) partitioned by day: the same columns,
-- defaults (its id sequence), checks and foreign keys but the one to email_queue (see
-- above); every row copied into its day's
-- partition; a DEFAULT partition; the primary key (id, created_at). Indexes and
-- triggers are created by the caller.
CREATE FUNCTION mailer_partition_by_day(parent text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    old text := parent || '_unpartitioned';
    seq text := parent || '_id_seq';
    day date;
    fk record;
    fks text[] := '{}';
BEGIN
    EXECUTE format('ALTER TABLE %I RENAME TO %I', parent, old);
    EXECUTE format('ALTER SEQUENCE %I OWNED BY NONE', seq);
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS) '
                   'PARTITION BY RANGE (created_at)', parent, old);
    EXECUTE format('ALTER SEQUENCE %I OWNED BY %I.id', seq, parent);
    EXECUTE format('CREATE TABLE %I PARTITION OF %I DEFAULT', parent || '_default', parent);
    EXECUTE format('ALTER TABLE %I SET (autovacuum_vacuum_insert_scale_factor = 0.05, '
                   'autovacuum_analyze_scale_factor = 0.02)', parent || '_default');
    FOR day IN EXECUTE format('SELECT DISTINCT (created_at AT TIME ZONE ''UTC'')::date FROM %I',
                              old) LOOP
        PERFORM mailer_create_partition(parent, day);
    END LOOP;
    -- Triggers come after the copy: copied events were announced to webhooks already.
    EXECUTE format('INSERT INTO %I SELECT * FROM %I', parent, old);
    FOR fk IN SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint
              WHERE conrelid = old::regclass AND contype = 'f'
                AND confrelid <> 'email_queue'::regclass ORDER BY conname LOOP
        fks := fks || format('ALTER TABLE %I ADD CONSTRAINT %I %s', parent, fk.conname, fk.def);
    END LOOP;
    EXECUTE format('DROP TABLE %I', old);
    FOR i IN 1 .. cardinality(fks) LOOP
        EXECUTE fks[i];
    END LOOP;
    EXECUTE format('ALTER TABLE %I ADD PRIMARY KEY (id, created_at)', parent);
END $$;

-- account_usage (migration 0017) reads send_logs: a view is bound to its table, not its
-- name, so it is set aside while send_logs is rebuilt and made again over the new one.
CREATE TEMP TABLE mailer_saved_views ON COMMIT DROP AS
SELECT 'account_usage'::text AS name, pg_get_viewdef('account_usage'::regclass) AS def;
DROP VIEW account_usage;
SELECT mailer_partition_by_day('send_logs');
CREATE INDEX send_logs_queue_idx ON send_logs (queue_id);
CREATE INDEX send_logs_account_window_idx ON send_logs (account_id, created_at) WHERE counted;
CREATE UNIQUE INDEX send_logs_attempt_id_unique ON send_logs (attempt_id, created_at)
    WHERE attempt_id IS NOT NULL;
CREATE INDEX send_logs_created_idx ON send_logs (created_at) WHERE counted;
DO $$
DECLARE v record;
BEGIN
    FOR v IN SELECT name, def FROM mailer_saved_views LOOP
        EXECUTE format('CREATE VIEW %I AS %s', v.name, v.def);
    END LOOP;
END $$;

SELECT mailer_partition_by_day('email_events');
CREATE INDEX email_events_queue_idx ON email_events (queue_id);
CREATE INDEX email_events_type_time_idx ON email_events (type, created_at);
CREATE INDEX email_events_account_type_time_idx ON email_events (account_id, type, created_at)
    WHERE account_id IS NOT NULL;
CREATE TRIGGER email_events_webhooks AFTER INSERT ON email_events
    FOR EACH ROW EXECUTE FUNCTION mailer_webhook_email_event();

DROP FUNCTION mailer_partition_by_day(text);  -- used once, above

SELECT ensure_partitions(interval '7 days');
