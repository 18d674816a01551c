-- Deleting an account must not re-route the rows pinned to it. email_queue.account_id is
-- ON DELETE SET NULL, so its queued rows silently became rows of the account's pool (or
-- of whatever pool they named). Now the delete is refused while any queued or sending
-- row is pinned to the account; the admin cancels those rows or pins them elsewhere
-- first. History keeps no account from being deleted, as before: sent, failed, suppressed
-- and cancelled rows lose their account_id and sent_by_account_id, send_logs and
-- email_events their account_id (SET NULL), account_events go with it (CASCADE).
-- The DELETE locks the account row before this trigger runs, so a concurrent INSERT
-- pinning a row to it either committed first (and is counted) or waits and then fails
-- its foreign key check. Inserts into email_queue are unchanged.
CREATE FUNCTION mailer_account_delete_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    pinned bigint;
BEGIN
    SELECT count(*) INTO pinned FROM email_queue
    WHERE account_id = OLD.id AND status IN ('queued', 'sending');
    IF pinned > 0 THEN
        RAISE EXCEPTION 'account % <%> has % queued or sending rows pinned to it',
                OLD.id, OLD.email, pinned
            USING ERRCODE = 'restrict_violation',
                  DETAIL = 'Deleting it would hand them to its pool without a word.',
                  HINT = format('Cancel them (UPDATE email_queue SET status = ''cancelled'' '
                                'WHERE account_id = %s AND status = ''queued''), or pin them '
                                'to another account or to the pool (SET account_id = NULL), '
                                'then delete the account.', OLD.id);
    END IF;
    RETURN OLD;
END $$;
CREATE TRIGGER sender_accounts_delete_guard BEFORE DELETE ON sender_accounts
    FOR EACH ROW EXECUTE FUNCTION mailer_account_delete_guard();
