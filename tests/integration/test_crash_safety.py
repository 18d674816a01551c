"""Crashes and stops of real worker processes (``python -m mailer worker``): a kill -9 in
the middle of a batch, SIGTERM with a send in flight. Whatever happens, every row ends
sent, none is lost or left 'sending', and only the message in flight at the instant of a
hard crash may reach the server twice, with the same Message-ID."""

from __future__ import annotations

import signal
import time

import pytest

from tests.support.mailer_env import (
    account_lock_held,
    add_account,
    count_sent,
    insert_emails,
    received_by_message_id,
    rows_by_id,
    running_worker,
    send_logs,
    smtp_rules_left,
    statuses,
    wait_until,
    worker_process,
)
from tests.support.smtp_server import ScriptedSMTPServer

ROWS = 20


async def kill_mid_batch(sql, smtp, proc) -> tuple[int, set[int]]:
    """Let the worker send a few messages of its batch, hold the next one in flight at the
    server, then kill -9 the worker. Returns how many messages the server had accepted
    and which rows were leased ('sending') when the worker died."""
    await wait_until(lambda: len(smtp.received) >= 5, message="5 messages accepted")
    smtp.reset_script()
    smtp.delay_data(5.0, times=1)
    await wait_until(lambda: smtp_rules_left(smtp) == 0, message="a message held in flight")
    accepted = len(smtp.received)
    proc.proc.kill()
    assert await proc.wait_exit() == -signal.SIGKILL
    leased = {r["id"] for r in rows_by_id(sql).values() if r["status"] == "sending"}
    return accepted, leased


@pytest.mark.slow
@pytest.mark.parametrize(
    "min_delay_ms",
    [150, 0],
)
async def test_kill_9_mid_batch_loses_nothing_and_resends_only_the_in_flight_message(
    sql, db_url, settings, tmp_path, min_delay_ms
):
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp, min_delay_ms=min_delay_ms)
        ids = insert_emails(sql, ROWS)
        smtp.delay_data(0.05, times=None)  # a slowish provider: the batch takes a while
        with worker_process(settings, db_url, account, tmp_path / "first.log") as first:
            accepted, leased = await kill_mid_batch(sql, smtp, first)
        smtp.reset_script()
        # Outcomes reach the database in batches: what it lacks is in the dead worker's
        # journal (replayed by the next worker), so the rows still leased are the others.
        assert count_sent(sql) <= accepted
        assert len(leased) == ROWS - count_sent(sql)

        # The dead worker's session goes away; a restarted worker takes over.
        await wait_until(lambda: not account_lock_held(sql, account), message="lock freed")
        with worker_process(settings, db_url, account, tmp_path / "second.log") as second:
            await wait_until(
                lambda: statuses(sql) == {"sent": ROWS}, timeout=20, message=f"all {ROWS} rows sent"
            )
            second.signal(signal.SIGTERM)
            assert await second.wait_exit() == 0
        received = smtp.received

    rows = rows_by_id(sql)
    by_id = received_by_message_id(smtp)
    assert set(by_id) == {rows[q]["message_id"] for q in ids}  # none lost, none foreign
    duplicated = {mid: len(copies) for mid, copies in by_id.items() if len(copies) > 1}
    assert len(duplicated) <= 1 and all(n == 2 for n in duplicated.values()), duplicated
    assert len(received) <= ROWS + 1
    for qid in ids:
        assert rows[qid]["locked_by"] is None and rows[qid]["last_error"] is None
    # Only the row in flight at the kill may have gone out: it was recovered as an
    # 'unknown' attempt (it counts against the limits, and keeps its attempt), and so was
    # the next row when it was already marked (without pacing the worker marks it while
    # the previous message is on the wire); the rows the dead worker merely held went back
    # untouched, then were sent.
    unknown = {log["queue_id"] for log in send_logs(sql) if log["outcome"] == "unknown"}
    assert len(unknown) in ((1,) if min_delay_ms else (1, 2)) and unknown <= leased
    for qid in leased:
        expected = ["unknown", "sent"] if qid in unknown else ["sent"]
        assert [log["outcome"] for log in send_logs(sql, qid)] == expected
        assert all(log["counted"] for log in send_logs(sql, qid))
        assert rows[qid]["attempts"] == len(expected)


@pytest.mark.slow
async def test_sigterm_finishes_the_send_in_flight_and_requeues_the_rest(
    sql, db_url, settings, tmp_path
):
    # The production heartbeat (2 s): with a heartbeat busy at the instant of the stop the
    # worker hits the bug shown by test_sigterm_with_a_busy_heartbeat_stops_within_the_grace.
    settings = settings.with_overrides(heartbeat_seconds=2.0)
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp)
        ids = insert_emails(sql, 10)
        smtp.delay_data(0.5, times=None)
        with worker_process(settings, db_url, account, tmp_path / "worker.log") as proc:
            await wait_until(lambda: len(smtp.received) >= 2, message="2 messages accepted")
            assert statuses(sql).get("sending", 0) > 0  # the rest of the batch is leased
            signalled = time.monotonic()
            proc.signal(signal.SIGTERM)
            code = await proc.wait_exit(timeout=settings.shutdown_grace_seconds + 5)
            stopped_after = time.monotonic() - signalled
            log = proc.stderr()
        received = smtp.received

    assert code == 0, log
    assert stopped_after < settings.shutdown_grace_seconds, (stopped_after, log)
    rows = rows_by_id(sql)
    sent = [q for q in ids if rows[q]["status"] == "sent"]
    queued = [q for q in ids if rows[q]["status"] == "queued"]
    assert len(sent) + len(queued) == 10 and queued  # nothing 'sending', nothing failed
    # Exactly what the server accepted is marked sent (the in-flight one included).
    assert {rows[q]["message_id"] for q in sent} == set(received_by_message_id(smtp))
    assert len(received) == len(sent)
    for qid in queued:
        assert rows[qid]["attempts"] == 0 and rows[qid]["locked_by"] is None
        assert send_logs(sql, qid) == []
    assert [log["outcome"] for log in send_logs(sql)] == ["sent"] * len(sent)
    assert sql.execute("SELECT count(*) AS n FROM workers").fetchone()["n"] == 0


async def test_stop_does_not_wait_out_a_long_min_delay(sql, db_url, settings):
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp, min_delay_ms=5000)
        insert_emails(sql, 3)
        async with running_worker(settings, db_url, account) as worker:
            await wait_until(lambda: count_sent(sql) == 1, message="first row sent")
            # The rest of the batch is leased, waiting for the next slot (5 s away).
            assert statuses(sql) == {"sent": 1, "sending": 2}
            stop_requested = time.monotonic()
        stopped_after = time.monotonic() - stop_requested
    assert worker.exit_code_seen == 0
    assert stopped_after < 1.0, stopped_after
    assert statuses(sql) == {"sent": 1, "queued": 2}
    assert all(r["attempts"] == 0 for r in rows_by_id(sql).values() if r["status"] == "queued")


@pytest.mark.slow
async def test_sigterm_with_a_busy_heartbeat_stops_within_the_grace(
    sql, db_url, settings, tmp_path
):
    # A heartbeat that is nearly always busy makes the race at shutdown (near-)certain.
    settings = settings.with_overrides(heartbeat_seconds=0.002, shutdown_grace_seconds=2.0)
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp)
        insert_emails(sql, 10)
        smtp.delay_data(0.5, times=None)
        with worker_process(settings, db_url, account, tmp_path / "worker.log") as proc:
            await wait_until(lambda: len(smtp.received) >= 2, message="2 messages accepted")
            signalled = time.monotonic()
            proc.signal(signal.SIGTERM)
            code = await proc.wait_exit(timeout=settings.shutdown_grace_seconds + 5)
            stopped_after = time.monotonic() - signalled
        received = smtp.received

    assert code == 0
    assert statuses(sql) == {"sent": len(received), "queued": 10 - len(received)}
    # A clean stop unregisters the worker (what `mailer status` counts as live)...
    assert sql.execute("SELECT count(*) AS n FROM workers").fetchone()["n"] == 0
    # ...and takes the in-flight send (0.5 s), not the whole grace period.
    assert stopped_after < 1.5, stopped_after


@pytest.mark.slow
async def test_send_cut_off_by_the_grace_period_is_recovered_by_the_next_worker(
    sql, db_url, settings, tmp_path
):
    # Production heartbeat: see test_sigterm_with_a_busy_heartbeat_stops_within_the_grace.
    settings = settings.with_overrides(shutdown_grace_seconds=1.0, heartbeat_seconds=2.0)
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp)
        ids = insert_emails(sql, 3)
        smtp.delay_data(3.0, times=1)
        with worker_process(settings, db_url, account, tmp_path / "worker.log") as proc:
            await wait_until(lambda: smtp_rules_left(smtp) == 0, message="first send held")
            proc.signal(signal.SIGTERM)
            assert await proc.wait_exit(timeout=10) == 0
        rows = rows_by_id(sql)
        # The send that may have gone out stays leased for recovery; the rest went back.
        assert sorted(r["status"] for r in rows.values()) == ["queued", "queued", "sending"]
        [cut_off] = [q for q in ids if rows[q]["status"] == "sending"]

        async with running_worker(settings, db_url, account):
            await wait_until(lambda: statuses(sql) == {"sent": 3}, message="3 rows sent")
        received = smtp.received

    rows = rows_by_id(sql)
    by_id = received_by_message_id(smtp)
    assert set(by_id) == {rows[q]["message_id"] for q in ids}
    assert all(
        len(copies) == 1 for mid, copies in by_id.items() if mid != rows[cut_off]["message_id"]
    )
    assert len(by_id[rows[cut_off]["message_id"]]) <= 2
    assert len(received) <= 4
    assert [log["outcome"] for log in send_logs(sql, cut_off)] == ["unknown", "sent"]


@pytest.mark.slow
async def test_rows_of_a_dead_worker_go_to_the_rest_of_its_pool_after_the_lease(
    sql, db_url, settings, tmp_path
):
    """Account A's worker dies for good; account B of the same pool recovers A's leased
    rows once their lease runs out, charges the one in flight to A (it may have gone out
    through A) and sends them all."""
    settings = settings.with_overrides(lease_seconds=2.0)
    with ScriptedSMTPServer() as smtp:
        a = add_account(sql, smtp, email="a@pool.example", pool="shared")
        b = add_account(sql, smtp, email="b@pool.example", pool="shared")
        ids = insert_emails(sql, 8, pool="shared")
        smtp.delay_data(5.0, times=1)
        with worker_process(settings, db_url, a, tmp_path / "a.log") as worker_a:
            await wait_until(lambda: smtp_rules_left(smtp) == 0, message="A's send held")
            worker_a.proc.kill()
            await worker_a.wait_exit()
        leased = {r["id"] for r in rows_by_id(sql).values() if r["status"] == "sending"}
        assert leased == set(ids)
        async with running_worker(settings, db_url, b):
            await wait_until(
                lambda: statuses(sql) == {"sent": 8}, timeout=10, message="B sent A's rows"
            )
        received = smtp.received

    rows = rows_by_id(sql)
    assert {rows[q]["sent_by_account_id"] for q in ids} == {b}
    assert {m.mail_from for m in received} == {"b@pool.example"}
    assert set(received_by_message_id(smtp)) == {rows[q]["message_id"] for q in ids}
    assert len(received) == 8
    # The row A had on the wire, and the next one when A had already marked it (see
    # mailer/lookahead.py), are charged to A.
    in_flight = [q for q in ids if rows[q]["attempts"] == 2]
    assert len(in_flight) in (1, 2)
    for qid in ids:
        logs = send_logs(sql, qid)
        expected = [("unknown", a), ("sent", b)] if qid in in_flight else [("sent", b)]
        assert [(log["outcome"], log["account_id"]) for log in logs] == expected
