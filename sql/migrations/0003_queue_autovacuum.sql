-- Autovacuum for a busy queue. Every email_queue row is inserted, then updated twice
-- (queued -> sending -> sent); none of those updates can be HOT (status is indexed), so
-- each leaves a dead row version and dead entries in the claim's partial indexes, which
-- the claim must step over until VACUUM removes them. PostgreSQL's defaults wait for 20 %
-- of the table to change: on a table of months of sent mail that is millions of dead
-- rows. Vacuum after 1 % (at least 1,000 rows), without throttling it to a crawl.
-- send_logs and email_events are insert-mostly: vacuum them often enough to keep their
-- visibility maps (index-only scans of the limit window) and statistics fresh.
ALTER TABLE email_queue SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 1
);
ALTER TABLE send_logs SET (
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02
);
ALTER TABLE email_events SET (
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02
);
