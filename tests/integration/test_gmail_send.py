"""Gmail accounts end to end: a real worker process sends through a local stand-in for the
Gmail API and Google's token endpoint (tests/support/gmail_api.py); every error mapping is
asserted on the rows, their attempts, send_logs and the account."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from mailer.config import Settings
from mailer.credentials import CredentialBox
from tests.support.gmail_api import Answer, GmailStandIn, api_error
from tests.support.mailer_env import (
    WorkerProcess,
    account_row,
    db_now,
    insert_emails,
    rows_by_id,
    send_logs,
    wait_until,
    worker_process,
)

pytestmark = pytest.mark.slow

PROJECT = "1234-test.apps.googleusercontent.com"


@pytest.fixture
def standin() -> Iterator[GmailStandIn]:
    with GmailStandIn("sender@example.com") as server:
        yield server


@dataclass
class GmailEnv:
    """A test database, the stand-in, and settings pointing workers at it."""

    sql: psycopg.Connection
    db_url: str
    settings: Settings
    standin: GmailStandIn
    logs: Path

    def add_account(self, *, email: str = "sender@example.com", project: str = PROJECT) -> int:
        """INSERT an active Gmail account whose credentials point at the stand-in."""
        credentials = self.standin.credentials_json(project)
        secret = CredentialBox(self.settings.secret_key).encrypt(credentials)
        return self.sql.execute(
            "INSERT INTO sender_accounts (email, backend, gmail_credentials_encrypted, "
            "gmail_project, daily_limit, min_delay_ms) VALUES (%s, 'gmail', %s, %s, 2000, 0) "
            "RETURNING id",
            (email, secret, project),
        ).fetchone()["id"]

    def worker(self, account_id: int) -> AbstractContextManager[WorkerProcess]:
        """A real ``mailer worker`` process for ``account_id``."""
        return worker_process(self.settings, self.db_url, account_id, self.logs / "worker.log")


@pytest.fixture
def env(
    sql: psycopg.Connection, db_url: str, settings: Settings, standin: GmailStandIn, tmp_path: Path
) -> GmailEnv:
    tuned = settings.with_overrides(gmail_api_endpoint=standin.url, gmail_timeout_seconds=5.0)
    return GmailEnv(sql, db_url, tuned, standin, tmp_path)


def final(sql: psycopg.Connection, ids: list[int]) -> bool:
    rows = rows_by_id(sql)
    return all(rows[i]["status"] in ("sent", "failed") for i in ids)


async def test_rows_go_out_through_the_api_with_the_rendered_message(
    sql: psycopg.Connection,
    env: GmailEnv,
) -> None:
    account = env.add_account()
    ids = insert_emails(sql, 3)
    with env.worker(account):
        await wait_until(lambda: final(sql, ids), message="sends")
    rows = rows_by_id(sql)
    assert [rows[i]["status"] for i in ids] == ["sent"] * 3
    by_message_id = {m.message["Message-ID"]: m for m in env.standin.sent}
    for i in ids:
        sent = by_message_id[rows[i]["message_id"]].message
        assert sent["From"] == "sender@example.com"
        assert sent["To"] == rows[i]["to_address"]
        assert sent["List-Unsubscribe"].startswith("<http://127.0.0.1:8025/unsubscribe/")
        [log] = send_logs(sql, i)
        assert (log["outcome"], log["code"]) == ("sent", 200)
        assert log["response"] == f"gmail id {by_message_id[rows[i]['message_id']].id}"
    assert len(env.standin.token_requests) == 1  # one refresh, then the token is reused
    assert env.standin.token_requests[0]["refresh_token"] == ["stand-in-refresh-token"]
    assert {m.authorization for m in env.standin.sent} == {"Bearer stand-in-access-1"}
    assert account_row(sql, account)["status"] == "active"


async def test_429_retry_after_holds_the_account_until_then(
    sql: psycopg.Connection,
    env: GmailEnv,
) -> None:
    resume = db_now(sql, 3.0)
    stamp = resume.strftime("%Y-%m-%dT%H:%M:%S.") + f"{resume.microsecond // 1000:03d}Z"
    text = f"User-rate limit exceeded.  Retry after {stamp} (Mail sending)"
    env.standin.fail_send(api_error(429, text, "rateLimitExceeded"))
    account = env.add_account()
    [row] = insert_emails(sql, 1)
    with env.worker(account):
        await wait_until(
            lambda: account_row(sql, account)["backoff_until"] is not None,
            message="the backoff",
        )
        held = account_row(sql, account)
        assert abs((held["backoff_until"] - resume).total_seconds()) < 0.002
        assert "daily sending limit reached" in held["last_error"]
        assert rows_by_id(sql)[row]["attempts"] == 0  # the row keeps its attempts
        await wait_until(lambda: final(sql, [row]), message="the send")
    sent = rows_by_id(sql)[row]
    assert sent["status"] == "sent" and sent["attempts"] == 1
    assert sent["sent_at"] >= resume
    logs = send_logs(sql, row)
    assert [(x["outcome"], x["code"]) for x in logs] == [("account", 429), ("sent", 200)]


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (api_error(403, "User Rate Limit Exceeded", "userRateLimitExceeded"), "userRate"),
        (api_error(403, "Rate Limit Exceeded", "rateLimitExceeded"), "rateLimitExceeded"),
        (api_error(503, "The service is currently unavailable.", "backendError"), "503"),
    ],
)
async def test_rate_limits_and_5xx_back_off_and_retry_without_using_attempts(
    sql: psycopg.Connection,
    env: GmailEnv,
    answer: Answer,
    words: str,
) -> None:
    env.standin.fail_send(answer)
    account = env.add_account()
    [row] = insert_emails(sql, 1)
    with env.worker(account):
        await wait_until(
            lambda: "backing off" in (account_row(sql, account)["last_error"] or ""),
            message="the backoff",
        )
        assert words in account_row(sql, account)["last_error"]
        await wait_until(lambda: final(sql, [row]), message="the send")
    sent = rows_by_id(sql)[row]
    assert (sent["status"], sent["attempts"]) == ("sent", 1)
    logs = send_logs(sql, row)
    assert [(x["outcome"], x["code"]) for x in logs] == [
        ("account", answer.status),
        ("sent", 200),
    ]
    assert account_row(sql, account)["backoff_until"] is None  # cleared by the send


async def test_project_daily_limit_backs_off_every_account_of_the_project(
    sql: psycopg.Connection,
    env: GmailEnv,
) -> None:
    quota = api_error(403, "Daily Limit Exceeded", "dailyLimitExceeded", "usageLimits")
    env.standin.fail_send(quota)
    account = env.add_account()
    sibling = env.add_account(email="other@example.com")
    stranger = env.add_account(email="third@example.com", project="999-other")
    [row] = insert_emails(sql, 1, account_id=account)
    with env.worker(account):
        await wait_until(
            lambda: account_row(sql, sibling)["backoff_until"] is not None,
            message="the project backoff",
        )
        own = account_row(sql, account)
        assert "dailyLimitExceeded" in own["last_error"]
        assert account_row(sql, sibling)["backoff_until"] == own["backoff_until"]
        assert "project quota" in account_row(sql, sibling)["last_error"]
        assert account_row(sql, stranger)["backoff_until"] is None
        await wait_until(lambda: final(sql, [row]), message="the send")
    assert (rows_by_id(sql)[row]["status"], rows_by_id(sql)[row]["attempts"]) == ("sent", 1)


async def test_invalid_recipient_fails_the_row_only(
    sql: psycopg.Connection,
    env: GmailEnv,
) -> None:
    env.standin.fail_send(api_error(400, "Invalid To header", "invalidArgument"))
    account = env.add_account()
    ids = insert_emails(sql, 2)
    with env.worker(account):
        await wait_until(lambda: final(sql, ids), message="sends")
    rows = rows_by_id(sql)
    failed, sent = sorted(ids, key=lambda i: rows[i]["status"])
    assert (rows[failed]["status"], rows[failed]["attempts"]) == ("failed", 1)
    assert "Invalid To header" in rows[failed]["last_error"]
    assert [(x["outcome"], x["code"]) for x in send_logs(sql, failed)] == [("permanent", 400)]
    assert rows[sent]["status"] == "sent"
    assert sql.execute("SELECT count(*) AS n FROM suppressions").fetchone()["n"] == 0
    assert account_row(sql, account)["status"] == "active"


@pytest.mark.parametrize(
    ("token_answer", "send_answers", "words"),
    [
        (
            Answer(400, {"error": "invalid_grant", "error_description": "Token has been revoked."}),
            [],
            "invalid_grant",
        ),
        (
            Answer(
                401,
                {"error": "unauthorized_client", "error_description": "Client is unauthorized"},
            ),
            [],
            "unauthorized_client",
        ),
        (None, [api_error(403, "Delegation denied for sender@example.com", "forbidden")], "403"),
    ],
    ids=["invalid_grant", "delegation-revoked", "delegation-denied"],
)
async def test_revoked_credentials_suspend_and_return_the_rows(
    sql: psycopg.Connection,
    env: GmailEnv,
    token_answer: Answer | None,
    send_answers: list[Answer],
    words: str,
) -> None:
    if token_answer is not None:
        env.standin.fail_token(token_answer)
    env.standin.fail_send(*send_answers)
    account = env.add_account()
    ids = insert_emails(sql, 2)
    with env.worker(account) as worker:
        await wait_until(
            lambda: account_row(sql, account)["status"] == "suspended",
            message="the suspension",
        )
        assert await worker.wait_exit() == 0
    assert words in account_row(sql, account)["last_error"]
    rows = rows_by_id(sql)
    assert [(rows[i]["status"], rows[i]["attempts"]) for i in ids] == [("queued", 0)] * 2
    assert env.standin.sent == []
    assert "stand-in-secret" not in worker.stderr()


async def test_a_gmail_and_an_smtp_account_side_by_side_under_mailer_run(
    sql: psycopg.Connection, env: GmailEnv
) -> None:
    from tests.integration.test_orchestrator import child_env, orchestrator
    from tests.support.mailer_env import add_account, statuses
    from tests.support.smtp_server import ScriptedSMTPServer

    child = child_env(env.db_url, env.logs, MAILER_GMAIL_API_ENDPOINT=env.standin.url)
    gmail = env.add_account()
    with ScriptedSMTPServer() as smtp:
        smtp_account = add_account(sql, smtp, email="relay@example.com")
        insert_emails(sql, 3, account_id=gmail, to_address=lambda i: f"g{i}@example.org")
        insert_emails(sql, 3, account_id=smtp_account, to_address=lambda i: f"s{i}@example.org")
        with orchestrator(child, env.logs / "orch.log") as orch:
            await wait_until(lambda: statuses(sql) == {"sent": 6}, message="6 rows sent")
            assert orch.terminate() == 0
    gmail_to = sorted(m.message["To"] for m in env.standin.sent)
    assert gmail_to == [f"g{i}@example.org" for i in range(3)]
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == [f"s{i}@example.org" for i in range(3)]
    sent_by = sql.execute(
        "SELECT sent_by_account_id AS a, count(*) AS n FROM email_queue GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert sent_by == [{"a": gmail, "n": 3}, {"a": smtp_account, "n": 3}]
