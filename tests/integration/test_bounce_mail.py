"""Bounce mail end to end against a real Dovecot: samples appended with IMAP APPEND, the
reader run, then suppressions, events, row linkage, flags, untouched mail, crashes."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from mailer.bounces.mailbox import PROCESSED_KEYWORD, Mailbox, open_mailbox
from mailer.bounces.reader import poll_all
from tests.support.bounce_checks import (
    REPORTS,
    assert_sample_outcomes,
    events,
    sent_row,
    suppressions,
)
from tests.support.bounce_samples import SAMPLES
from tests.support.dovecot import Dovecot, run_dovecot
from tests.support.mailer_env import advisory_lock_held, mailer_run, wait_until


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    yield from run_dovecot()


@pytest.fixture
def account(mailer: Any, sql: Any, dovecot: Dovecot) -> int:
    """An SMTP account whose bounce mailbox is the Dovecot user's INBOX."""
    mailer(
        "accounts", "add", "--email", "news@shop.example", "--smtp-host", "127.0.0.1",
        "--imap-host", dovecot.host, "--imap-port", str(dovecot.port),
        "--imap-security", "none", "--imap-username", dovecot.user,
        "--imap-password", dovecot.password,
    )  # fmt: skip
    return sql.execute("SELECT id FROM sender_accounts").fetchone()["id"]


def append_sample(dovecot: Dovecot, sql: Any, account_id: int, name: str) -> dict[str, Any]:
    row = sent_row(sql, account_id, name)
    dovecot.append(SAMPLES[name](row["message_id"], row["to_address"]))
    return row


def flags_by_message_id(dovecot: Dovecot) -> dict[bytes, set[str]]:
    return {mid: flags for flags, mid in dovecot.messages().values()}


async def test_every_sample_gets_exactly_its_outcome(dovecot, account, sql, db, settings):
    rows = {name: append_sample(dovecot, sql, account, name) for name in SAMPLES}

    [result] = await poll_all(db, settings)

    assert (result.applied, result.duplicates, result.untouched, result.error) == (7, 0, 4, None)
    assert_sample_outcomes(sql, account, rows)

    flags = dovecot.messages()
    assert len(flags) == len(SAMPLES)  # nothing deleted
    processed = sorted(uid for uid, (f, _) in flags.items() if PROCESSED_KEYWORD in f)
    assert processed == [list(SAMPLES).index(n) + 1 for n in REPORTS]
    assert all("\\Seen" not in f and "\\Deleted" not in f for f, _ in flags.values())


async def test_a_second_poll_reads_nothing_again(dovecot, account, sql, db, settings):
    for name in ("postfix", "vacation"):
        append_sample(dovecot, sql, account, name)
    await poll_all(db, settings)
    [again] = await poll_all(db, settings)
    assert (again.applied, again.duplicates, again.untouched) == (0, 0, 0)
    assert len(events(sql)) == 1


class Crash(BaseException):
    """A kill between the database commit and the IMAP flag (never caught as an error)."""


def crashing_opener(crash_on_flag: int) -> Any:
    """Open the real mailbox, but die when flagging the ``crash_on_flag``-th message."""
    flagged = []

    def opener(*args: Any) -> Mailbox:
        mailbox = open_mailbox(*args)
        real_mark = mailbox.mark_processed

        def mark(ref: str) -> None:
            flagged.append(ref)
            if len(flagged) == crash_on_flag:
                raise Crash(ref)
            real_mark(ref)

        mailbox.mark_processed = mark  # type: ignore[method-assign]
        return mailbox

    return opener


async def test_a_crash_between_commit_and_flag_counts_nothing_twice(
    dovecot, account, sql, db, settings
):
    names = ("postfix", "gmail", "vacation", "arf")
    for name in names:
        append_sample(dovecot, sql, account, name)

    with pytest.raises(Crash):
        await poll_all(db, settings, opener=crashing_opener(crash_on_flag=2))
    # postfix applied and flagged; gmail applied (committed) but not flagged; no cursor.
    assert len(events(sql)) == 2
    assert sql.execute("SELECT count(*) AS n FROM bounce_mailboxes").fetchone()["n"] == 0

    [result] = await poll_all(db, settings)

    assert (result.applied, result.duplicates, result.untouched) == (1, 1, 1)
    assert sorted(e["data"]["kind"] for e in events(sql)) == [
        "complaint",
        "hard_bounce",
        "hard_bounce",
    ]
    assert len(suppressions(sql)) == 3
    flags = [f for f, _ in dovecot.messages().values()]
    assert [PROCESSED_KEYWORD in f for f in flags] == [True, True, False, True]


async def test_reading_everything_again_counts_nothing_twice(dovecot, account, sql, db, settings):
    """A lost cursor and lost flags (a restored mailbox): every report is found applied."""
    for name in REPORTS:
        append_sample(dovecot, sql, account, name)
    await poll_all(db, settings)
    before = (events(sql), suppressions(sql))
    sql.execute("DELETE FROM bounce_mailboxes")
    conn = dovecot.connect()
    conn.select("INBOX")
    conn.uid("STORE", "1:*", "-FLAGS.SILENT", f"({PROCESSED_KEYWORD})")
    conn.logout()

    [result] = await poll_all(db, settings)

    assert (result.applied, result.duplicates) == (0, len(REPORTS))
    assert (events(sql), suppressions(sql)) == before
    assert all(PROCESSED_KEYWORD in f for f, _ in dovecot.messages().values())


async def test_soft_bounces_suppress_only_after_the_threshold(dovecot, account, sql, db, settings):
    row = sent_row(sql, account, "slow")
    for n in range(3):
        report = SAMPLES["delayed"](row["message_id"], row["to_address"])
        dovecot.append(report.replace(b"7Gh3lr1Abc@", f"7Gh3lr1Abc{n}@".encode()))
        [result] = await poll_all(db, settings)
        assert result.applied == 1
        expected = {} if n < 2 else {"slow@example.org": ("soft_bounce", True)}
        assert suppressions(sql) == expected
    decision = sql.execute("SELECT decisions FROM bounce_messages ORDER BY id DESC").fetchone()
    assert decision["decisions"][0]["suppression"] == "soft_bounce"


async def test_a_hard_bounce_feeds_the_reputation_guard(dovecot, account, sql, db, settings):
    old = sent_row(sql, account, "old")
    sql.execute(
        "INSERT INTO send_logs (queue_id, account_id, outcome, counted, code) "
        "SELECT %s, %s, 'sent', true, 250 FROM generate_series(1, 200)",
        (old["id"], account),
    )
    sql.execute(
        "INSERT INTO email_events (queue_id, account_id, type, data) SELECT %s, %s, 'bounce', "
        '\'{"kind": "hard_bounce"}\' FROM generate_series(1, 10)',
        (old["id"], account),
    )
    append_sample(dovecot, sql, account, "exchange")

    await poll_all(db, settings)

    state = sql.execute(
        "SELECT status, last_error FROM sender_accounts WHERE id = %s", (account,)
    ).fetchone()
    assert state["status"] == "paused"
    assert "hard-bounce rate 5.50% (11 of 200" in state["last_error"]


async def test_a_paused_accounts_mailbox_is_still_read(dovecot, account, sql, db, settings):
    sql.execute("UPDATE sender_accounts SET status = 'paused' WHERE id = %s", (account,))
    append_sample(dovecot, sql, account, "postfix")
    [result] = await poll_all(db, settings)
    assert result.applied == 1


async def test_a_wrong_password_is_reported_not_raised(dovecot, account, sql, db, settings):
    sql.execute(
        "UPDATE sender_accounts SET imap_password_encrypted = NULL WHERE id = %s", (account,)
    )
    [result] = await poll_all(db, settings)
    assert result.error and "IMAP 127.0.0.1" in result.error
    saved = sql.execute("SELECT last_error FROM bounce_mailboxes").fetchone()["last_error"]
    assert saved == result.error


def test_cli_settings_list_and_show(dovecot, account, sql, mailer):
    stored = sql.execute("SELECT * FROM sender_accounts WHERE id = %s", (account,)).fetchone()
    assert stored["imap_password_encrypted"] and dovecot.password not in str(dict(stored))
    listed = json.loads(mailer("accounts", "list", "--json"))[0]
    assert (listed["imap_host"], listed["imap_security"]) == ("127.0.0.1", "none")
    assert not any("password" in key for key in listed)

    row = append_sample(dovecot, sql, account, "gmail")
    append_sample(dovecot, sql, account, "unrelated")
    out = mailer("bounces", "poll")
    assert f"account {account}: 1 applied, 0 already applied, 1 left untouched (ok)" in out

    listing = mailer("bounces", "list")
    line = listing.splitlines()[1]
    assert row["to_address"] in line and "5.1.1" in line and "hard_bounce" in line
    assert "news@shop.example" in line and line.rstrip().endswith(str(row["id"]))
    bounce_id = line.split()[0]
    shown = mailer("bounces", "show", bounce_id)
    assert f"{row['to_address']}: hard_bounce 5.1.1 (row {row['id']}, hard_bounce)" in shown
    assert "Subject: Delivery Status Notification (Failure)" in shown
    assert "mailer suppress remove" in shown
    mailer("bounces", "show", "999999", code=1)

    edited = mailer("accounts", "edit", str(account), "--imap-port", "10143")
    assert "@127.0.0.1:10143 (none)" in edited
    assert mailer("accounts", "edit", str(account), "--no-imap").endswith("bounce mailbox none\n")
    mailer("accounts", "edit", str(account), code=2)


def bounce_reader_lock_held(sql: Any) -> bool:
    return advisory_lock_held(sql, 734603)


@pytest.mark.slow
async def test_mailer_run_reads_bounces_of_a_paused_account(
    dovecot, account, sql, db_url, tmp_path
):
    """`mailer run` starts the bounce reader beside the workers; a paused account has no
    worker, but its bounces are read; SIGTERM stops the reader with the orchestrator."""
    sql.execute("UPDATE sender_accounts SET status = 'paused' WHERE id = %s", (account,))
    row = append_sample(dovecot, sql, account, "postfix")
    extra = {
        "MAILER_BOUNCE_POLL_SECONDS": "0.5",
        "MAILER_SHUTDOWN_GRACE_SECONDS": "5",
        "MAILER_ORCHESTRATOR_POLL_SECONDS": "0.5",
    }
    with mailer_run(db_url, tmp_path, **extra) as process:
        await wait_until(
            lambda: row["to_address"] in suppressions(sql), timeout=20, message="suppressed"
        )
        assert bounce_reader_lock_held(sql)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    assert "started the bounce reader" in (tmp_path / "run.log").read_text()
    assert not bounce_reader_lock_held(sql)
    assert sql.execute("SELECT count(*) AS n FROM workers").fetchone()["n"] == 0


async def test_an_unreadable_message_is_left_alone(
    dovecot, account, sql, db, settings, monkeypatch
):
    import mailer.bounces.reader as reader

    def parse(raw: bytes) -> Any:
        if b"Exim" in raw:
            raise ValueError("unparseable")
        return real_parse(raw)

    real_parse = reader.parse_report
    monkeypatch.setattr(reader, "parse_report", parse)
    for name in ("exim", "gmail"):
        append_sample(dovecot, sql, account, name)
    [result] = await poll_all(db, settings)
    assert (result.applied, result.untouched, result.error) == (1, 1, None)
    flags = [f for f, _ in dovecot.messages().values()]
    assert [PROCESSED_KEYWORD in f for f in flags] == [False, True]


@pytest.mark.slow
async def test_a_killed_orchestrator_leaves_no_bounce_reader_behind(sql, db_url, tmp_path):
    """kill -9 of `mailer run`: its bounce reader stops too (before, it ran on orphaned,
    holding the reader lock, and the next orchestrator's reader waited for ever)."""
    with mailer_run(db_url, tmp_path, MAILER_WEBHOOK_SENDER="0") as process:
        await wait_until(lambda: bounce_reader_lock_held(sql), timeout=20, message="reader")
        process.kill()
        process.wait(timeout=10)
        await wait_until(
            lambda: not bounce_reader_lock_held(sql), timeout=10, message="reader gone"
        )
