-- An account made active again by any UPDATE (an admin's SQL, the console, `mailer
-- accounts resume`) starts clean, as `mailer accounts resume` always did: its last_error
-- (the pause or suspension reason, which `mailer status` shows as the account's note) and
-- any backoff are cleared, unless that same UPDATE changes them. Before, an admin's
-- `UPDATE sender_accounts SET status = 'active'` left "paused by operator" on an account
-- that was sending again, and a suspended account's backoff still held it idle.
CREATE OR REPLACE FUNCTION mailer_account_reactivated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.reputation_since := now();
    IF NEW.last_error IS NOT DISTINCT FROM OLD.last_error THEN
        NEW.last_error := NULL;
    END IF;
    IF NEW.backoff_until IS NOT DISTINCT FROM OLD.backoff_until
       AND NEW.backoff_count = OLD.backoff_count THEN
        NEW.backoff_until := NULL;
        NEW.backoff_count := 0;
    END IF;
    RETURN NEW;
END $$;
