"""Helpers for API tests: keys made straight in the database, and authorised requests."""

from __future__ import annotations

from typing import Any

import psycopg

from mailer.api_keys import ApiKeyManager


def make_key(sql: psycopg.Connection, scope: str = "admin", *pools: str) -> str:
    """A new key's secret (``sql`` is the test's autocommit dict-row connection)."""
    return ApiKeyManager(sql).create(f"test {scope}", scope, pools).secret


def auth(secret: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"} | headers


def email(**fields: Any) -> dict[str, Any]:
    """A valid email body, with ``fields`` replacing or adding to it."""
    return {"to": "alice@example.org", "subject": "Hi", "html": "<p>Hi</p>"} | fields
