"""A real HTTP webhook receiver for tests: stdlib ``http.server`` in a thread on 127.0.0.1.

It verifies every request as a receiver would, with the ``standardwebhooks`` package and
the endpoint's secret, and answers from a script (a list of status codes, then 200).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.support.http_thread import LocalHTTPServer


@dataclass(frozen=True)
class Received:
    """One request: its headers, raw body, and the verified payload (None if it failed)."""

    headers: dict[str, str]
    body: bytes
    payload: Any
    verified: bool

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


class WebhookReceiver(LocalHTTPServer):
    """``with WebhookReceiver() as r: r.secret = ...; r.url`` — see the module docstring."""

    def __init__(self, *, delay_seconds: float = 0.0) -> None:
        self.secret: str | None = None
        self.script: list[int] = []
        self.delay_seconds = delay_seconds
        #: What every answer's body is (default: a small JSON document).
        self.reply_body: bytes | None = None
        self.received: list[Received] = []
        #: Requests whose body was read (counted before any delay and before the answer).
        self.arrived = 0
        self._lock = threading.Lock()
        super().__init__(self._handler(), "/hooks")

    def ids(self) -> list[str]:
        with self._lock:
            return [r.webhook_id for r in self.received]

    def _record(self, headers: dict[str, str], body: bytes) -> int:
        payload, verified = None, False
        if self.secret is not None:
            try:
                payload = Webhook(self.secret).verify(body, headers)
                verified = True
            except WebhookVerificationError:
                pass
        with self._lock:
            self.received.append(Received(headers, body, payload, verified))
            status = self.script.pop(0) if self.script else 200
        return status if verified else 401

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    receiver.arrived += 1
                if receiver.delay_seconds:
                    time.sleep(receiver.delay_seconds)
                status = receiver._record(headers, body)
                reply = receiver.reply_body or json.dumps({"status": status}).encode()
                self.send_response(status)
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
