"""The Gmail bounce mailbox without a network: the exact requests it makes
(googleapiclient's HttpMockSequence), its cursor, and Gmail's errors as MailboxError."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, urlsplit

import pytest
from googleapiclient.http import HttpMockSequence

from mailer.bounces.gmail_mailbox import (
    PROCESSED_LABEL,
    REPORT_QUERY,
    GmailCursor,
    GmailMailbox,
    list_query,
)
from mailer.bounces.mailbox import MailboxError
from mailer.gmail import GmailClient, build_service

ENDPOINT = "https://gmail.standin.example/"
API = ENDPOINT + "gmail/v1/users/me/"
RAW = b"From: MAILER-DAEMON@example.org\r\nSubject: Undelivered\r\n\r\nbody\r\n"


def mailbox_over(answers: list[tuple[dict[str, str], str]]) -> tuple[GmailMailbox, list]:
    http = HttpMockSequence(answers)
    return GmailMailbox(GmailClient(build_service(http, ENDPOINT))), http.request_sequence


def ok(body: object) -> tuple[dict[str, str], str]:
    return {"status": "200"}, json.dumps(body)


def query_of(uri: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(uri).query)


def test_list_fetch_and_label_make_exactly_these_requests() -> None:
    raw = base64.urlsafe_b64encode(RAW).decode().rstrip("=")
    mailbox, sent = mailbox_over(
        [
            ok({"labels": [{"id": "INBOX", "name": "INBOX", "type": "system"}]}),
            ok({"id": "Label_7", "name": PROCESSED_LABEL}),
            ok({"messages": [{"id": "m3"}, {"id": "m2"}], "nextPageToken": "p2"}),
            ok({"messages": [{"id": "m1"}]}),
            ok({"id": "m1", "raw": raw, "internalDate": "1764579600123"}),
            ok({"id": "m1", "labelIds": ["INBOX", "Label_7"]}),
        ]
    )
    mailbox.connect()
    batch = mailbox.list_new(None, limit=2)
    fetched = mailbox.fetch(batch.refs[0])
    mailbox.mark_processed(batch.refs[0])

    assert batch.refs == ("m1", "m2")  # oldest first, at most limit
    assert fetched == RAW
    assert mailbox.cursor_after("m1") == "gmail:1764579600123:m1/1764579600"
    (labels, create, page1, page2, get, modify) = sent
    assert (labels[1], labels[0].split("?")[0]) == ("GET", API + "labels")
    assert (create[1], create[0].split("?")[0]) == ("POST", API + "labels")
    assert json.loads(create[2])["name"] == "Mailer/Processed"
    assert page1[1] == "GET" and page1[0].split("?")[0] == API + "messages"
    expected_q = REPORT_QUERY + " newer_than:30d -label:Mailer/Processed"
    assert query_of(page1[0])["q"] == [expected_q]
    assert query_of(page1[0])["maxResults"] == ["500"] and "pageToken" not in query_of(page1[0])
    assert query_of(page2[0])["pageToken"] == ["p2"] and query_of(page2[0])["q"] == [expected_q]
    assert "labelIds" not in query_of(page1[0])  # archived reports are read too
    assert (get[1], get[0].split("?")[0]) == ("GET", API + "messages/m1")
    assert query_of(get[0])["format"] == ["raw"]
    assert (modify[1], modify[0].split("?")[0]) == ("POST", API + "messages/m1/modify")
    assert json.loads(modify[2]) == {"addLabelIds": ["Label_7"]}


def test_an_existing_label_is_reused_and_the_cursor_bounds_the_query() -> None:
    mailbox, sent = mailbox_over(
        [
            ok({"labels": [{"id": "Label_3", "name": PROCESSED_LABEL, "type": "user"}]}),
            ok({"messages": [{"id": "m9"}, {"id": "m8"}, {"id": "m5"}]}),
        ]
    )
    mailbox.connect()
    batch = mailbox.list_new("gmail:1764579600123:m5/1764579600", limit=10)

    assert batch.refs == ("m8", "m9")  # m5 was handled already
    assert len(sent) == 2 and sent[1][1] == "GET"
    since = REPORT_QUERY + " after:1764578999 -label:Mailer/Processed"  # 10 min overlap
    assert query_of(sent[1][0])["q"] == [since]


def test_gmail_errors_become_mailbox_errors() -> None:
    body = {"error": {"code": 403, "message": "Insufficient Permission", "errors": []}}
    mailbox, _ = mailbox_over([({"status": "403"}, json.dumps(body))])
    with pytest.raises(MailboxError, match="Gmail API 403: Insufficient Permission"):
        mailbox.connect()


def test_cursor_keeps_the_ids_the_next_list_finds_again() -> None:
    assert GmailCursor.parse(None) is None
    assert GmailCursor.parse("7:12") is None  # an IMAP cursor: start again
    assert GmailCursor.parse("gmail:5000:a/x") is None  # damaged: start again
    t = 1_764_579_600  # seconds
    cursor = GmailCursor(0).after("a", t * 1000).after("b", (t + 300) * 1000 + 500)
    assert str(cursor) == f"gmail:{(t + 300) * 1000 + 500}:a/{t},b/{t + 300}"
    assert cursor.since == t + 300 - 601
    older = cursor.after("c", (t + 100) * 1000)  # indexed late: the date stays
    assert older.internal_date == cursor.internal_date and older.ids == {"a", "b", "c"}
    later = cursor.after("d", (t + 900) * 1000)  # "a" falls out of the overlap
    assert later.ids == {"b", "d"} and later.since == t + 900 - 601
    assert GmailCursor.parse(str(later)) == later
    assert list_query(later) == f"{REPORT_QUERY} after:{t + 299} -label:Mailer/Processed"
