"""Bounce mail of a Gmail account end to end, through the Gmail API stand-in: the samples
delivered to its mailbox, the reader run, then suppressions, events, labels, untouched
mail, a second poll and a crash between the commit and the label."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from mailer.bounces.gmail_mailbox import PROCESSED_LABEL, REPORT_QUERY
from mailer.bounces.mailbox import Mailbox, open_mailbox
from mailer.bounces.reader import poll_all
from mailer.config import Settings
from tests.support.bounce_checks import (
    REPORTS,
    assert_sample_outcomes,
    events,
    sent_row,
    suppressions,
)
from tests.support.bounce_samples import SAMPLES
from tests.support.gmail_api import Answer, GmailStandIn

#: 2026-12-01 09:00:00 UTC, in milliseconds (Gmail's internalDate)
T0 = 1_764_579_600_000


@pytest.fixture
def standin() -> Iterator[GmailStandIn]:
    with GmailStandIn("news@shop.example") as server:
        yield server


@pytest.fixture
def gsettings(settings: Settings, standin: GmailStandIn) -> Settings:
    return dataclasses.replace(settings, gmail_api_endpoint=standin.url)


@pytest.fixture
def account(mailer: Any, sql: Any, standin: GmailStandIn) -> int:
    """A paused Gmail account: its bounces are read whatever its status."""
    mailer(
        "accounts", "add", "--backend", "gmail", "--email", "news@shop.example",
        "--credentials-file", "-", "--paused", input=standin.credentials_json(),
    )  # fmt: skip
    return sql.execute("SELECT id FROM sender_accounts").fetchone()["id"]


def deliver(standin: GmailStandIn, sql: Any, account_id: int, name: str, n: int) -> Any:
    """The row a sample reports on, and the Gmail id of the sample (received n s after T0)."""
    row = sent_row(sql, account_id, name)
    raw = SAMPLES[name](row["message_id"], row["to_address"])
    return row, standin.deliver(raw, T0 + n * 1000)


async def test_every_sample_gets_exactly_its_outcome(standin, account, sql, db, gsettings):
    delivered = {name: deliver(standin, sql, account, name, n) for n, name in enumerate(SAMPLES)}
    rows = {name: row for name, (row, _) in delivered.items()}

    [result] = await poll_all(db, gsettings)

    assert (result.applied, result.duplicates, result.untouched, result.error) == (7, 0, 4, None)
    assert_sample_outcomes(sql, account, rows)
    assert list(standin.labels.values()) == [PROCESSED_LABEL]
    for name, (_, gmail_id) in delivered.items():
        expected = {PROCESSED_LABEL} if name in REPORTS else set()  # auto-replies: none
        assert standin.label_names(gmail_id) == expected, name
    assert all("INBOX" in m.labels for m in standin.mailbox)  # nothing moved or deleted
    assert len(standin.mailbox) == len(SAMPLES)
    assert standin.queries == [f"{REPORT_QUERY} newer_than:30d -label:{PROCESSED_LABEL}"]
    last = T0 // 1000 + len(SAMPLES) - 1
    cursor = sql.execute("SELECT cursor FROM bounce_mailboxes").fetchone()["cursor"]
    assert cursor.startswith(f"gmail:{last * 1000}:")


async def test_a_second_poll_reads_only_new_mail(standin, account, sql, db, gsettings):
    deliver(standin, sql, account, "postfix", 0)
    _, vacation = deliver(standin, sql, account, "vacation", 1)
    await poll_all(db, gsettings)
    [again] = await poll_all(db, gsettings)
    assert (again.applied, again.duplicates, again.untouched) == (0, 0, 0)

    deliver(standin, sql, account, "exim", 5)
    [third] = await poll_all(db, gsettings)

    assert (third.applied, third.duplicates, third.untouched) == (1, 0, 0)
    since_postfix = f"{REPORT_QUERY} after:{T0 // 1000 - 600} -label:{PROCESSED_LABEL}"
    assert standin.queries[1:] == [since_postfix, since_postfix]
    assert standin.label_names(vacation) == set()
    assert [e["data"]["kind"] for e in events(sql)] == ["hard_bounce", "hard_bounce"]


class Crash(BaseException):
    """A kill between the database commit and the Gmail label (never caught)."""


async def test_a_crash_between_commit_and_label_counts_nothing_twice(
    standin, account, sql, db, gsettings
):
    ids = [deliver(standin, sql, account, n, i)[1] for i, n in enumerate(("postfix", "gmail"))]

    def opener(*args: Any) -> Mailbox:
        mailbox = open_mailbox(*args)

        def mark(ref: str) -> None:
            raise Crash(ref)

        mailbox.mark_processed = mark  # type: ignore[method-assign]
        return mailbox

    with pytest.raises(Crash):
        await poll_all(db, gsettings, opener=opener)
    assert len(events(sql)) == 1 and standin.label_names(ids[0]) == set()

    [result] = await poll_all(db, gsettings)

    assert (result.applied, result.duplicates) == (1, 1)
    assert len(events(sql)) == 2 and len(suppressions(sql)) == 2
    assert [standin.label_names(i) for i in ids] == [{PROCESSED_LABEL}] * 2


async def test_revoked_access_is_reported_not_raised(standin, account, sql, db, gsettings):
    standin.fail_token(Answer(400, {"error": "invalid_grant", "error_description": "Revoked"}))
    [result] = await poll_all(db, gsettings)
    assert result.error and "invalid_grant" in result.error
    saved = sql.execute("SELECT last_error FROM bounce_mailboxes").fetchone()["last_error"]
    assert saved == result.error and "stand-in-secret" not in saved


async def test_a_report_gmail_indexed_late_is_still_read(standin, account, sql, db, gsettings):
    deliver(standin, sql, account, "postfix", 300)
    await poll_all(db, gsettings)
    _, late = deliver(standin, sql, account, "gmail", 60)  # received earlier, listed later

    [result] = await poll_all(db, gsettings)

    assert (result.applied, result.duplicates, result.untouched) == (1, 0, 0)
    assert standin.label_names(late) == {PROCESSED_LABEL}
    assert len(suppressions(sql)) == 2
