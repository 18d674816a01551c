"""Helpers for tracking-app tests: the app on a test's database, rows as the worker leaves
them after sending, and reading events back."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from flask import Flask

from mailer.config import Settings
from mailer.tokens import TokenCodec
from tracking import close_app, create_app

BROWSER = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.0 Safari/605.1.15"
)


@contextmanager
def tracking_app(db_url: str, settings: Settings, **config: Any) -> Iterator[Flask]:
    """The tracking app on ``db_url``; its pool and event writer are closed afterwards."""
    app = create_app({"DATABASE_URL": db_url, "SETTINGS": settings, "TESTING": True} | config)
    try:
        yield app
    finally:
        close_app(app)


def flush_events(app: Flask) -> None:
    """Wait until the app's background writer has written every event."""
    assert app.extensions["mailer"].writer.flush(10), "events were not written in time"


def codec(settings: Settings) -> TokenCodec:
    return TokenCodec(settings.secret_key)


def sent_row(
    sql: psycopg.Connection,
    account_id: int,
    *,
    to: str = "alice@example.org",
    message_id: str | None = None,
) -> dict[str, Any]:
    """INSERT a row as it is once sent by ``account_id``; return it."""
    row = sql.execute(
        "INSERT INTO email_queue (to_address, subject, html_body, status, sent_at, "
        "sent_by_account_id, message_id) VALUES (%s, 'Hi', '<p>Hi</p>', 'sent', now(), %s, "
        "COALESCE(%s, '<' || gen_random_uuid() || '@shop.example>')) RETURNING *",
        (to, account_id, message_id),
    ).fetchone()
    return row


def account(sql: psycopg.Connection, email: str = "news@shop.example") -> int:
    """INSERT an active account that is never contacted; return its id."""
    return sql.execute(
        "INSERT INTO sender_accounts (email, smtp_host, smtp_port) "
        "VALUES (%s, '127.0.0.1', 1) RETURNING id",
        (email,),
    ).fetchone()["id"]


def events(sql: psycopg.Connection, kind: str | None = None) -> list[dict[str, Any]]:
    query = "SELECT * FROM email_events WHERE %(kind)s::text IS NULL OR type = %(kind)s ORDER BY id"
    return sql.execute(query, {"kind": kind}).fetchall()


def closed_port_url() -> str:
    """A PostgreSQL URL nothing listens on (a database outage)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"postgresql://mailer@127.0.0.1:{port}/mailer"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
