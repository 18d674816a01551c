"""VERP end to end: an SMTP account with --verp sends each row with an envelope sender
naming it (as the SMTP server received it), and a bounce that carries only that address
(no Message-ID of ours) suppresses exactly that row's address; a forged one nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from mailer.bounces.reader import poll_all
from mailer.verp import VerpCodec
from tests.support.bounce_checks import events, suppressions
from tests.support.bounce_samples import bare_dsn
from tests.support.dovecot import Dovecot, run_dovecot
from tests.support.mailer_env import insert_emails, running_worker, statuses, wait_until
from tests.support.smtp_server import ScriptedSMTPServer

CODEC = VerpCodec("test-secret-key")  # the secret of the mailer and settings fixtures


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    yield from run_dovecot()


@pytest.fixture
def smtp() -> Iterator[ScriptedSMTPServer]:
    with ScriptedSMTPServer() as server:
        yield server


@pytest.fixture
def account(mailer: Any, sql: Any, smtp: ScriptedSMTPServer, dovecot: Dovecot) -> int:
    out = mailer(
        "accounts", "add", "--email", "news@shop.example", "--smtp-host", smtp.host,
        "--smtp-port", str(smtp.port), "--smtp-security", "none", "--min-delay-ms", "0",
        "--verp", "--imap-host", dovecot.host, "--imap-port", str(dovecot.port),
        "--imap-security", "none", "--imap-username", dovecot.user,
        "--imap-password", dovecot.password,
    )  # fmt: skip
    assert out.startswith("added account")
    return sql.execute("SELECT id FROM sender_accounts").fetchone()["id"]


async def test_the_envelope_names_the_row_and_its_bounce_suppresses_it(
    account, smtp, dovecot, sql, db, db_url, settings, mailer
):
    ids = insert_emails(sql, 3)
    async with running_worker(settings, db_url, account):
        await wait_until(lambda: statuses(sql) == {"sent": 3}, message="rows sent")
    received = {m.rcpt_tos[0]: m for m in smtp.wait_for(3)}
    rows = {r["id"]: r for r in sql.execute("SELECT * FROM email_queue").fetchall()}
    for queue_id in ids:
        message = received[rows[queue_id]["to_address"]]
        assert message.mail_from == CODEC.address("news@shop.example", queue_id)
        assert message.message["From"] == "news@shop.example"

    bounced = ids[1]
    verp = received[rows[bounced]["to_address"]].mail_from
    dovecot.append(bare_dsn(verp, rows[bounced]["to_address"]))
    forged = CODEC.address("news@shop.example", ids[2]).replace(f"-{ids[2]}-", f"-{ids[0]}-")
    dovecot.append(
        bare_dsn(forged, rows[ids[0]]["to_address"]).replace(b"9Kx1bare@", b"9Kx1forged@")
    )

    [result] = await poll_all(db, settings)

    assert (result.applied, result.untouched, result.error) == (1, 1, None)
    assert suppressions(sql) == {rows[bounced]["to_address"]: ("hard_bounce", False)}
    [event] = events(sql)
    assert (event["queue_id"], event["type"], event["data"]["kind"]) == (
        bounced,
        "bounce",
        "hard_bounce",
    )
    assert event["data"]["message_id"] == rows[bounced]["message_id"]

    edited = await asyncio.to_thread(mailer, "accounts", "edit", str(account), "--no-verp")
    assert "verp False" in edited
    [fourth] = insert_emails(sql, 1, to_address="late@example.org")
    async with running_worker(settings, db_url, account):
        await wait_until(lambda: statuses(sql) == {"sent": 4}, message="fourth sent")
    assert smtp.wait_for(4)[-1].mail_from == "news@shop.example" and fourth > bounced


def test_verp_is_refused_for_gmail_accounts(mailer) -> None:
    out = mailer(
        "accounts", "add", "--backend", "gmail", "--email", "g@shop.example", "--verp",
        "--credentials-file", "-", input="{}", code=2,
    )  # fmt: skip
    assert "--verp is for SMTP accounts" in out
