"""Helpers for API tests: keys made straight in the database, and authorised requests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from mailer.api_keys import ApiKeyManager
from mailer.client import MailerClient
from mailer.config import Settings
from tests.support.tracking_env import tracking_app
from tracking.gunicorn_child import gunicorn_child
from tracking.server import BackgroundServer

ROOT = Path(__file__).resolve().parents[2]


def make_key(sql: psycopg.Connection, scope: str = "admin", *pools: str) -> str:
    """A new key's secret (``sql`` is the test's autocommit dict-row connection)."""
    return ApiKeyManager(sql).create(f"test {scope}", scope, pools).secret


def auth(secret: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"} | headers


@contextmanager
def live_client(db_url: str, settings: Settings, key: str) -> Iterator[MailerClient]:
    """A :class:`MailerClient` with ``key`` against the API served on a live server."""
    with (
        tracking_app(db_url, settings, WEB_ROUTES="api") as app,
        BackgroundServer(app) as server,
        MailerClient(server.url, key) as client,
    ):
        yield client


def email(**fields: Any) -> dict[str, Any]:
    """A valid email body, with ``fields`` replacing or adding to it."""
    return {"to": "alice@example.org", "subject": "Hi", "html": "<p>Hi</p>"} | fields


@contextmanager
def api_gunicorn(db_url: str, home: Path, *, workers: int = 2, **env: str) -> Iterator[str]:
    """``gunicorn tracking.wsgi:app`` serving only the API (``MAILER_WEB_ROUTES=api``) on a
    free port, ``workers`` processes; yields its base URL."""
    environ = (
        os.environ
        | {
            "DATABASE_URL": db_url,
            "MAILER_SECRET_KEY": "test-secret-key",
            "MAILER_HOME": str(home),
            "MAILER_WEB_ROUTES": "api",
        }
        | env
    )
    with gunicorn_child(environ, workers=workers) as base:
        yield base
