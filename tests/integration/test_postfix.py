"""Interop with a real Postfix (Debian's ``postfix`` package): one smtpd service per
scenario on loopback, configured as an operator's relay or a recipient's MX would be
(tests/support/postfix.py). A real worker sends; the final rows, attempts, send_logs
(code and Postfix's own text), suppressions and the account's state are asserted.

Skipped, naming the package, where the ``postfix`` binary is absent."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailer.status import collect_status, format_status
from tests.support.mailer_env import (
    account_row,
    add_account,
    backing_off,
    hold,
    insert_emails,
    rows_by_id,
    running_worker,
    send_logs,
    statuses,
    wait_until,
)
from tests.support.postfix import POSTFIX, SKIP_REASON, PostfixInstance
from tests.support.tls import make_ca_and_server_cert

pytestmark = pytest.mark.skipif(POSTFIX is None, reason=SKIP_REASON)

RECIPIENT_ACCESS = "smtpd_recipient_restrictions=check_recipient_access,texthash:DIR/recipient_access,permit_mynetworks,reject"  # noqa: E501

SCENARIOS = {
    "relay": [RECIPIENT_ACCESS],
    "size": ["message_size_limit=3000"],
    "sender": ["smtpd_sender_restrictions=check_sender_access,texthash:DIR/sender_access"],
    "helo": [
        "smtpd_helo_required=yes",
        "smtpd_helo_restrictions=reject_non_fqdn_helo_hostname",
    ],
    "broken": ["smtpd_recipient_restrictions=check_recipient_access,hash:DIR/missing"],
    "rate": [
        "smtpd_client_recipient_rate_limit=3",
        "smtpd_client_event_limit_exceptions=",
    ],
    "connections": [
        "smtpd_client_connection_rate_limit=1",
        "smtpd_client_event_limit_exceptions=",
    ],
    "tls": [
        "smtpd_tls_security_level=may",
        "smtpd_tls_cert_file=DIR/server.pem",
        "smtpd_tls_key_file=DIR/server.key",
    ],
}


@pytest.fixture(scope="module")
def postfix() -> Iterator[PostfixInstance]:
    # Not pytest's tmp_path: its parents are private to root, and Postfix's daemons run
    # as the postfix user.
    directory = Path(tempfile.mkdtemp(prefix="mailer-postfix-"))
    try:
        make_ca_and_server_cert(directory)
        with PostfixInstance(directory, SCENARIOS) as instance:
            yield instance
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def use(sql, postfix: PostfixInstance, scenario: str, **columns: object) -> int:
    """An account sending through one scenario's smtpd, with a fully qualified EHLO name."""
    server = type("Server", (), {"host": postfix.host, "port": postfix.port(scenario)})
    columns.setdefault("ehlo_hostname", "mailer.client.example")
    return add_account(sql, server, **columns)


def log_entries(sql, queue_id: int) -> list[tuple]:
    return [
        (log["outcome"], log["counted"], log["code"], log["response"])
        for log in send_logs(sql, queue_id)
    ]


def suppressions(sql) -> dict[str, str]:
    rows = sql.execute("SELECT email, reason FROM suppressions").fetchall()
    return {r["email"]: r["reason"] for r in rows}


# -- what already worked, proven against Postfix -------------------------------------------


async def test_recipient_replies(sql, db_url, settings, postfix):
    account = use(sql, postfix, "relay")
    [ok] = insert_emails(sql, 1, to_address="alice@example.org")
    [ghost] = insert_emails(sql, 1, to_address="ghost@example.org")
    [blocked] = insert_emails(sql, 1, to_address="blocked@example.org")
    [full] = insert_emails(sql, 1, to_address="full@example.org")
    [grey] = insert_emails(sql, 1, to_address="grey@example.org", max_attempts=2)
    async with running_worker(settings, db_url, account):
        await wait_until(lambda: statuses(sql) == {"sent": 1, "failed": 4}, message="settled")

    [(outcome, counted, code, response)] = log_entries(sql, ok)
    assert (outcome, counted, code) == ("sent", True, 250) and response.startswith("2.0.0 Ok")
    assert log_entries(sql, ghost) == [
        (
            "permanent",
            True,
            550,
            "5.1.1 <ghost@example.org>: Recipient address rejected: "
            "User unknown in relay recipient table",
        )
    ]
    assert log_entries(sql, blocked) == [
        (
            "permanent",
            True,
            550,
            "5.7.1 <blocked@example.org>: Recipient address rejected: Blocked by local policy",
        )
    ]
    assert log_entries(sql, full) == [
        (
            "permanent",
            True,
            552,
            "5.2.2 <full@example.org>: Recipient address rejected: Mailbox full",
        )
    ]
    greylisted = (
        "4.2.0 <grey@example.org>: Recipient address rejected: "
        "Greylisted, see http://postgrey.example/"
    )
    assert log_entries(sql, grey) == [("transient", True, 450, greylisted)] * 2
    rows = rows_by_id(sql)
    assert [rows[q]["attempts"] for q in (ghost, blocked, full, grey)] == [1, 1, 1, 2]
    # Only the address that does not exist is suppressed: a policy refusal is not a bounce.
    assert suppressions(sql) == {"ghost@example.org": "hard_bounce"}
    acc = account_row(sql, account)
    assert acc["status"] == "active" and acc["backoff_until"] is None


# -- issue 8: what did not work ------------------------------------------------------------


async def test_a_message_over_the_size_limit_fails_alone(sql, db_url, settings, postfix):
    account = use(sql, postfix, "size")
    [big] = insert_emails(sql, 1, html_body="<p>" + "x" * 5000 + "</p>", priority=9)
    small = insert_emails(sql, 4)
    async with running_worker(settings, db_url, account):
        await wait_until(lambda: statuses(sql) == {"failed": 1, "sent": 4}, message="settled")

    failed = rows_by_id(sql)[big]
    assert failed["attempts"] == 1
    assert "too large" in failed["last_error"] and "at most 3000" in failed["last_error"]
    assert [entry[:3] for entry in log_entries(sql, big)] == [("permanent", False, None)]
    assert all(rows_by_id(sql)[q]["sent_at"] is not None for q in small)
    acc = account_row(sql, account)
    assert acc["status"] == "active" and acc["backoff_until"] is None
    assert suppressions(sql) == {}


async def test_a_refused_sender_at_rcpt_suspends_the_account(sql, db_url, settings, postfix):
    account = use(sql, postfix, "sender", email="notmine@shop.example")
    ids = insert_emails(sql, 20)
    async with running_worker(settings, db_url, account):
        await wait_until(
            lambda: account_row(sql, account)["status"] == "suspended", message="suspended"
        )
    text = "5.7.1 <notmine@shop.example>: Sender address rejected: not owned by user bob"
    error = account_row(sql, account)["last_error"]
    assert error.startswith("suspended: 553 sender refused: ")
    assert text in error and "--email" in error
    rows = rows_by_id(sql)
    assert statuses(sql) == {"queued": 20}
    assert all(rows[q]["attempts"] == 0 for q in ids)
    [entry] = [e for q in ids for e in log_entries(sql, q)]
    assert entry[:3] == ("account", False, 553) and text in entry[3]
    assert suppressions(sql) == {}


async def test_a_refused_helo_suspends_and_a_qualified_name_passes(sql, db_url, settings, postfix):
    bad = use(sql, postfix, "helo", email="a@shop.example", ehlo_hostname="localhost")
    good = use(sql, postfix, "helo", email="b@shop.example")
    insert_emails(sql, 5, account_id=bad)
    [sent] = insert_emails(sql, 1, account_id=good, to_address="z@example.org")
    async with running_worker(settings, db_url, bad):
        await wait_until(lambda: account_row(sql, bad)["status"] == "suspended", message="bad")
    async with running_worker(settings, db_url, good):
        await wait_until(lambda: rows_by_id(sql)[sent]["status"] == "sent", message="good")

    error = account_row(sql, bad)["last_error"]
    assert error.startswith("suspended: 504 EHLO name refused: ")
    assert "5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname" in error
    assert "MAILER_EHLO_HOSTNAME" in error
    assert statuses(sql) == {"queued": 5, "sent": 1}
    assert all(r["attempts"] == 0 for r in rows_by_id(sql).values() if r["status"] == "queued")


async def test_a_server_configuration_error_backs_the_account_off(sql, db_url, settings, postfix):
    account = use(sql, postfix, "broken")
    ids = insert_emails(sql, 10)
    async with running_worker(settings, db_url, account):
        await wait_until(lambda: backing_off(sql, account), message="backing off")
        await wait_until(
            lambda: account_row(sql, account)["backoff_count"] >= 3, message="three backoffs"
        )
    rows = rows_by_id(sql)
    assert statuses(sql) == {"queued": 10}
    assert all(rows[q]["attempts"] == 0 for q in ids)  # the server's fault, not the rows'
    logged = [e for q in ids for e in log_entries(sql, q)]
    assert len(logged) >= 3
    assert all(
        entry[:3] == ("account", False, 451)
        and entry[3].startswith("server-side temporary failure: 4.3.5 <user")
        and entry[3].endswith(": Recipient address rejected: Server configuration error")
        for entry in logged
    )
    assert "Server configuration error" in account_row(sql, account)["last_error"]


async def test_a_recipient_rate_limit_lowers_the_accounts_rate(sql, db_url, settings, postfix, db):
    account = use(sql, postfix, "rate")
    ids = insert_emails(sql, 8)
    async with running_worker(settings, db_url, account):
        await wait_until(lambda: backing_off(sql, account), message="throttled")
        await wait_until(
            lambda: sql.execute("SELECT count(*) AS n FROM send_rates").fetchone()["n"] == 1,
            message="rate saved",
        )
        # Postfix's limit is per minute: nothing more is refused while the rate holds us.
        await hold(lambda: statuses(sql).get("sent", 0) == 3, 1.0, "no burst after the cut")

    [rate] = sql.execute("SELECT * FROM send_rates").fetchall()
    assert rate["destination"] == "" and 1.0 <= rate["per_minute"] <= 2.0
    assert "4.7.1 Error: too many recipients from 127.0.0.1" in rate["reason"]
    throttled = [q for q in ids if send_logs(sql, q) and rows_by_id(sql)[q]["status"] == "queued"]
    assert [log_entries(sql, q) for q in throttled] == [
        [("account", False, 450, "4.7.1 Error: too many recipients from 127.0.0.1")]
    ]
    assert all(r["attempts"] == 0 for r in rows_by_id(sql).values() if r["status"] == "queued")
    report = await collect_status(db)
    assert report["accounts"][0]["rate_per_minute"] == rate["per_minute"]
    assert f"shaped: rate {rate['per_minute']:.1f}/min" in format_status(report)


async def test_a_421_at_the_greeting_logs_code_and_text(sql, db_url, settings, postfix):
    settings = settings.with_overrides(messages_per_connection=1)
    account = use(sql, postfix, "connections")
    ids = insert_emails(sql, 3)
    async with running_worker(settings, db_url, account):
        await wait_until(lambda: backing_off(sql, account), message="refused at greeting")
    refused = [e for q in ids for e in log_entries(sql, q) if e[0] == "account"]
    assert refused[0] == (
        "account",
        False,
        421,
        "server not ready: 4.7.0 mx.postfix-test.example Error: too many connections from "
        "127.0.0.1",
    )
    assert "too many connections" in account_row(sql, account)["last_error"]
    assert all(r["attempts"] <= 1 for r in rows_by_id(sql).values())


async def test_tls_to_a_private_ca_relay(sql, db_url, settings, postfix):
    ca_file = Path(postfix.path("ca.pem"))
    untrusted = use(sql, postfix, "tls", email="a@shop.example", smtp_security="starttls")
    [first] = insert_emails(sql, 1, account_id=untrusted)
    async with running_worker(settings, db_url, untrusted):
        await wait_until(
            lambda: account_row(sql, untrusted)["status"] == "suspended", message="suspended"
        )
    error = account_row(sql, untrusted)["last_error"]
    assert "certificate verification failed" in error and "--tls-ca-file" in error
    assert rows_by_id(sql)[first]["attempts"] == 0

    sql.execute(
        "UPDATE sender_accounts SET smtp_tls_ca_file = %s, status = 'active' WHERE id = %s",
        (str(ca_file), untrusted),
    )
    async with running_worker(settings, db_url, untrusted):
        await wait_until(lambda: statuses(sql) == {"sent": 1}, message="sent over TLS")
    assert "TLS" in postfix.log()
