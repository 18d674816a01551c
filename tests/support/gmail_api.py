"""A local stand-in for the Gmail API and Google's OAuth token endpoint (tests only).

:class:`GmailStandIn` serves on 127.0.0.1 (a free port) from a thread with the stdlib's
``http.server``: ``POST /token`` (refresh-token grant), ``POST
/gmail/v1/users/me/messages/send``, ``GET /gmail/v1/users/me/profile``, and the calls a
bounce reader makes on the mailbox: ``GET .../messages`` (newest first, paged; of the
``q`` search only ``after:<seconds>`` and ``-label:<name>`` are applied, the rest is
recorded in :attr:`GmailStandIn.queries`), ``GET .../messages/<id>`` (``format=raw``),
``POST .../messages/<id>/modify``, ``GET`` and ``POST .../labels``. :meth:`deliver` puts
a message in the mailbox. API calls must carry a token the stand-in issued. Answers can
be scripted: :meth:`fail_send` queues error answers for the next sends,
:meth:`fail_token` for the next token requests.

Point Mailer at it with ``MAILER_GMAIL_API_ENDPOINT=standin.url`` and an authorized-user
credentials file from :meth:`credentials_json` (its ``token_uri`` is the stand-in's).
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from tests.support.http_thread import LocalHTTPServer

PREFIX = "/gmail/v1/users/me"


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


@dataclass(frozen=True)
class SentMessage:
    id: str
    raw: bytes
    authorization: str

    @property
    def message(self) -> EmailMessage:
        return cast(EmailMessage, BytesParser(policy=policy.default).parsebytes(self.raw))


@dataclass
class MailboxMessage:
    """A message received in the stand-in's mailbox; ``labels`` are label ids."""

    id: str
    raw: bytes
    internal_date: int  # milliseconds since the epoch, as Gmail's internalDate
    labels: set[str]


def api_error(status: int, message: str, reason: str, domain: str = "global") -> Answer:
    """A Google API error answer as Gmail writes them."""
    return Answer(
        status,
        {
            "error": {
                "code": status,
                "message": message,
                "errors": [{"domain": domain, "reason": reason, "message": message}],
            }
        },
    )


class GmailStandIn(LocalHTTPServer):
    """See module docstring. Use as a context manager."""

    def __init__(self, email: str = "sender@example.com") -> None:
        self.email = email
        self.sent: list[SentMessage] = []
        self.token_requests: list[dict[str, list[str]]] = []
        self.requests: list[tuple[str, str]] = []
        self.mailbox: list[MailboxMessage] = []
        self.labels: dict[str, str] = {}  # user label id -> name
        self.queries: list[str] = []
        self._send_answers: list[Answer] = []
        self._token_answers: list[Answer] = []
        self._tokens: set[str] = set()
        self._lock = threading.Lock()
        super().__init__(self._handler())

    # -- scripting ---------------------------------------------------------------------

    def fail_send(self, *answers: Answer) -> None:
        with self._lock:
            self._send_answers.extend(answers)

    def fail_token(self, *answers: Answer) -> None:
        with self._lock:
            self._token_answers.extend(answers)

    def credentials_json(self, client_id: str = "1234-test.apps.googleusercontent.com") -> str:
        return json.dumps(
            {
                "type": "authorized_user",
                "client_id": client_id,
                "client_secret": "stand-in-secret",
                "refresh_token": "stand-in-refresh-token",
                "token_uri": self.url + "token",
            }
        )

    def deliver(self, raw: bytes, internal_date: int, labels: tuple[str, ...] = ("INBOX",)) -> str:
        """Put ``raw`` in the mailbox as received at ``internal_date`` (ms); its id."""
        with self._lock:
            message_id = f"19d{len(self.mailbox) + 1:013x}"
            self.mailbox.append(MailboxMessage(message_id, raw, internal_date, set(labels)))
        return message_id

    def label_names(self, message_id: str) -> set[str]:
        """The names of the user labels on mailbox message ``message_id``."""
        [found] = [m for m in self.mailbox if m.id == message_id]
        return {self.labels[label] for label in found.labels if label in self.labels}

    # -- serving -----------------------------------------------------------------------

    def _next(self, answers: list[Answer]) -> Answer | None:
        with self._lock:
            return answers.pop(0) if answers else None

    def _token(self, form: dict[str, list[str]]) -> Answer:
        self.token_requests.append(form)
        scripted = self._next(self._token_answers)
        if scripted is not None:
            return scripted
        with self._lock:
            token = f"stand-in-access-{len(self._tokens) + 1}"
            self._tokens.add(token)
        return Answer(200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"})

    def _api(self, method: str, url: str, authorization: str, body: bytes) -> Answer:
        with self._lock:
            authorized = authorization.removeprefix("Bearer ") in self._tokens
        if not authorized:
            return api_error(401, "Invalid Credentials", "authError")
        path, params = urlsplit(url).path, parse_qs(urlsplit(url).query)
        if method == "POST" and path == PREFIX + "/messages/send":
            return self._send(json.loads(body), authorization)
        if method == "GET" and path == PREFIX + "/profile":
            total = len(self.sent)
            return Answer(200, {"emailAddress": self.email, "messagesTotal": total})
        if path == PREFIX + "/labels":
            return self._labels(method, body)
        if method == "GET" and path == PREFIX + "/messages":
            return self._list(params)
        if method == "GET" and path.startswith(PREFIX + "/messages/"):
            return self._get(path.rpartition("/")[2])
        if method == "POST" and path.startswith(PREFIX + "/messages/") and path.endswith("/modify"):
            return self._modify(path.split("/")[-2], json.loads(body))
        return api_error(404, f"no such method {method} {path}", "notFound")

    def _labels(self, method: str, body: bytes) -> Answer:
        with self._lock:
            if method == "POST":
                label_id = f"Label_{len(self.labels) + 1}"
                self.labels[label_id] = json.loads(body)["name"]
                return Answer(200, {"id": label_id, "name": self.labels[label_id]})
            system = [{"id": n, "name": n, "type": "system"} for n in ("INBOX", "SPAM")]
            users = [{"id": i, "name": n, "type": "user"} for i, n in self.labels.items()]
            return Answer(200, {"labels": system + users})

    def _list(self, params: dict[str, list[str]]) -> Answer:
        q = params.get("q", [""])[0]
        self.queries.append(q)
        after = [int(t[6:]) * 1000 for t in q.split() if t.startswith("after:")]
        without = {t[7:] for t in q.split() if t.startswith("-label:")}
        with self._lock:
            hidden = {i for i, n in self.labels.items() if n in without}
            found = [
                m
                for m in sorted(self.mailbox, key=lambda m: -m.internal_date)
                if not (m.labels & (hidden | {"SPAM", "TRASH"}))
                and all(m.internal_date >= a + 1000 for a in after)
            ]
        start = int(params.get("pageToken", ["0"])[0])
        size = int(params.get("maxResults", ["100"])[0])
        page = {"messages": [{"id": m.id, "threadId": m.id} for m in found[start : start + size]]}
        if start + size < len(found):
            page["nextPageToken"] = str(start + size)
        return Answer(200, page)

    def _get(self, wanted: str) -> Answer:
        for m in [*self.mailbox, *self.sent]:
            if m.id == wanted:
                answer = {"id": m.id, "raw": base64.urlsafe_b64encode(m.raw).decode()}
                if isinstance(m, MailboxMessage):
                    answer["internalDate"] = str(m.internal_date)
                return Answer(200, answer)
        return api_error(404, "Requested entity was not found.", "notFound")

    def _modify(self, wanted: str, body: dict[str, Any]) -> Answer:
        with self._lock:
            for m in self.mailbox:
                if m.id == wanted:
                    m.labels |= set(body.get("addLabelIds") or [])
                    m.labels -= set(body.get("removeLabelIds") or [])
                    return Answer(200, {"id": m.id, "labelIds": sorted(m.labels)})
        return api_error(404, "Requested entity was not found.", "notFound")

    def _send(self, body: dict[str, Any], authorization: str) -> Answer:
        scripted = self._next(self._send_answers)
        if scripted is not None:
            return scripted
        raw = base64.urlsafe_b64decode(body["raw"])
        with self._lock:
            message_id = f"18c{len(self.sent) + 1:013x}"
            self.sent.append(SentMessage(message_id, raw, authorization))
        return Answer(200, {"id": message_id, "threadId": message_id, "labelIds": ["SENT"]})

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                path = urlsplit(self.path).path
                standin.requests.append((method, path))
                if path == "/token":
                    answer = standin._token(parse_qs(body.decode()))
                else:
                    auth = self.headers.get("Authorization", "")
                    answer = standin._api(method, self.path, auth, body)
                data = json.dumps(answer.body).encode()
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
