"""A Gmail account's mailbox, read through the Gmail API, as a bounce :class:`Mailbox`.

The same four calls as IMAP, over the account's own API access (scope ``gmail.modify``;
see :mod:`mailer.gmail`), all blocking (the reader runs them in a thread):

- list: ``users.messages.list`` with :data:`REPORT_QUERY` (delivery status notifications
  and feedback reports, not yet labelled processed, received since the cursor). No
  ``labelIds``: Gmail lists every folder but Spam and Trash, so reports a filter
  archived are read too. Gmail lists newest first; the reader gets them oldest first.
- fetch: ``users.messages.get`` with ``format=raw`` (the message as received; reading it
  marks nothing read).
- mark processed: ``users.messages.modify`` adding the user label :data:`PROCESSED_LABEL`,
  created once (``users.labels.list``, else ``users.labels.create``).
- cursor: the newest ``internalDate`` handled (milliseconds), with the ids handled in the
  :data:`OVERLAP_SECONDS` before it: the next list asks Gmail only for mail received
  since then (``after:`` takes Unix seconds; the overlap covers Gmail's search index
  lagging behind delivery) and skips those ids, so mail left untouched (an automatic
  reply that matched the query) is not read again at every poll. The first poll of a
  mailbox looks back :data:`FIRST_LOOK_BACK` only.

Gmail's errors become :class:`MailboxError` with Gmail's reason (never a credential).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mailer.bounces.mailbox import MailboxBatch, MailboxError
from mailer.gmail import GmailClient, classify

#: The user label a processed report gets.
PROCESSED_LABEL = "Mailer/Processed"
#: Gmail search for bounces and complaints (Gmail's search operators), in parentheses so
#: the date and label terms joined to it apply to every alternative.
REPORT_QUERY = (
    "(from:mailer-daemon OR from:postmaster OR from:mail-daemon"
    ' OR subject:"delivery status notification" OR subject:undeliverable'
    ' OR subject:undelivered OR subject:"delivery failure" OR subject:"failure notice"'
    ' OR subject:"returned mail" OR subject:"mail delivery failed"'
    ' OR subject:"abuse report" OR "feedback-type")'
)
#: How far back the first poll of a mailbox looks (Gmail's ``newer_than:``).
FIRST_LOOK_BACK = "30d"
#: How far before the newest message handled each later poll looks again: Gmail's search
#: index can lag behind delivery, and a report indexed late must still be found.
OVERLAP_SECONDS = 600
_PAGE_SIZE = 500


@dataclass(frozen=True)
class GmailCursor:
    """Where the reader stopped: the newest ``internalDate`` (ms) handled, and every
    message handled since :data:`OVERLAP_SECONDS` before it with the second it was
    received (the next list finds those again and skips them). Stored as
    ``gmail:<ms>:<id>/<second>,...``."""

    internal_date: int
    handled: tuple[tuple[str, int], ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> GmailCursor | None:
        """The cursor in ``text``; None (start again) for none, another mailbox's or a
        damaged one."""
        kind, _, rest = (text or "").partition(":")
        stamp, _, entries = rest.partition(":")
        pairs = [e.partition("/") for e in entries.split(",") if e]
        if kind != "gmail" or not stamp.isdigit() or any(not s.isdigit() for _, _, s in pairs):
            return None
        return cls(int(stamp), tuple((i, int(s)) for i, _, s in pairs))

    def __str__(self) -> str:
        entries = ",".join(f"{i}/{s}" for i, s in self.handled)
        return f"gmail:{self.internal_date}:{entries}"

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(i for i, _ in self.handled)

    @property
    def since(self) -> int:
        """The Unix second the next list starts after (Gmail's ``after:``)."""
        return self.internal_date // 1000 - OVERLAP_SECONDS - 1

    def after(self, ref: str, internal_date: int) -> GmailCursor:
        """This cursor moved past message ``ref`` received at ``internal_date`` (ms)."""
        moved = GmailCursor(max(self.internal_date, internal_date))
        kept = [(i, s) for i, s in self.handled if s >= moved.since and i != ref]
        return GmailCursor(moved.internal_date, (*kept, (ref, internal_date // 1000)))


def list_query(cursor: GmailCursor | None) -> str:
    """The ``q`` of ``users.messages.list`` for the mail after ``cursor``."""
    since = f"after:{cursor.since}" if cursor else f"newer_than:{FIRST_LOOK_BACK}"
    return f"{REPORT_QUERY} {since} -label:{PROCESSED_LABEL}"


class GmailMailbox:
    """The mailbox of a Gmail account (see module docstring)."""

    def __init__(self, client: GmailClient) -> None:
        self.client = client
        self._label_id = ""
        self._cursor: GmailCursor | None = None
        self._dates: dict[str, int] = {}

    @property
    def _users(self) -> Any:
        return self.client.service.users()

    def connect(self) -> None:
        """Authorize and find (or create) the processed label."""
        self._label_id = self._call(self._processed_label)

    def _processed_label(self) -> str:
        self.client.authorize()
        labels = self._users.labels().list(userId="me").execute().get("labels") or []
        for label in labels:
            if label.get("name") == PROCESSED_LABEL:
                return str(label["id"])
        body = {
            "name": PROCESSED_LABEL,
            "labelListVisibility": "labelShow",
            "messageListVisibility": "show",
        }
        return str(self._users.labels().create(userId="me", body=body).execute()["id"])

    def list_new(self, cursor: str | None, limit: int) -> MailboxBatch:
        self._cursor = GmailCursor.parse(cursor)
        skip = self._cursor.ids if self._cursor else frozenset()
        found = self._call(lambda: self._list_ids(list_query(self._cursor)))
        ids = [i for i in found if i not in skip]
        return MailboxBatch(tuple(reversed(ids))[:limit])

    def _list_ids(self, q: str) -> list[str]:
        """Every id the query finds, newest first (Gmail's order), all pages."""
        ids: list[str] = []
        page: str | None = None
        while True:
            paging = {"pageToken": page} if page else {}
            answer = (
                self._users.messages()
                .list(userId="me", q=q, maxResults=_PAGE_SIZE, **paging)
                .execute()
            )
            ids += [str(m["id"]) for m in answer.get("messages") or []]
            page = answer.get("nextPageToken")
            if not page:
                return ids

    def fetch(self, ref: str) -> bytes:
        answer = self._call(
            lambda: self._users.messages().get(userId="me", id=ref, format="raw").execute()
        )
        self._dates[ref] = int(answer.get("internalDate") or 0)
        return decode_raw(answer["raw"])

    def mark_processed(self, ref: str) -> None:
        body = {"addLabelIds": [self._label_id]}
        self._call(lambda: self._users.messages().modify(userId="me", id=ref, body=body).execute())

    def cursor_after(self, ref: str) -> str:
        start = self._cursor or GmailCursor(0)
        self._cursor = start.after(ref, self._dates.get(ref, start.internal_date))
        return str(self._cursor)

    def close(self) -> None:
        """Nothing to close: each call is its own HTTP request."""

    def _call(self, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except Exception as exc:
            raise MailboxError(str(classify(exc))) from None


def decode_raw(raw: str) -> bytes:
    """Gmail's ``raw`` (base64url, padding optional) as bytes."""
    return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
