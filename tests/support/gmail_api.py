"""A local stand-in for the Gmail API and Google's OAuth token endpoint (tests only).

:class:`GmailStandIn` serves on 127.0.0.1 (a free port) from a thread with the stdlib's
``http.server``: ``POST /token`` (refresh-token grant), ``POST
/gmail/v1/users/me/messages/send``, ``GET /gmail/v1/users/me/profile``, ``GET
/gmail/v1/users/me/messages`` and ``GET /gmail/v1/users/me/messages/<id>``. API calls
must carry a token the stand-in issued. Answers can be scripted: :meth:`fail_send` queues
error answers for the next sends, :meth:`fail_token` for the next token requests.

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

    def _api(self, method: str, path: str, authorization: str, body: bytes) -> Answer:
        with self._lock:
            authorized = authorization.removeprefix("Bearer ") in self._tokens
        if not authorized:
            return api_error(401, "Invalid Credentials", "authError")
        if method == "POST" and path == PREFIX + "/messages/send":
            return self._send(json.loads(body), authorization)
        if method == "GET" and path == PREFIX + "/profile":
            total = len(self.sent)
            return Answer(200, {"emailAddress": self.email, "messagesTotal": total})
        if method == "GET" and path == PREFIX + "/messages":
            return Answer(200, {"messages": [{"id": m.id, "threadId": m.id} for m in self.sent]})
        if method == "GET" and path.startswith(PREFIX + "/messages/"):
            wanted = path.rpartition("/")[2]
            for m in self.sent:
                if m.id == wanted:
                    raw = base64.urlsafe_b64encode(m.raw).decode()
                    return Answer(200, {"id": m.id, "raw": raw})
            return api_error(404, "Requested entity was not found.", "notFound")
        return api_error(404, f"no such method {method} {path}", "notFound")

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
                    answer = standin._api(method, path, auth, body)
                data = json.dumps(answer.body).encode()
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
