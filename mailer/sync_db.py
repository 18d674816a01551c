"""Named queries on a synchronous psycopg connection (the web app's threads and short CLI
commands); :mod:`mailer.db` is the async side the workers use."""

from __future__ import annotations

from typing import Any

import psycopg

from mailer.sql_queries import query

Row = dict[str, Any]


def run(
    conn: psycopg.Connection[Any], name: str, params: dict[str, Any] | None = None
) -> list[Row]:
    """Run the named query on ``conn`` (inside the caller's transaction, if any); return its
    rows (none for a statement without a result)."""
    cur = conn.execute(query(name), params or {})
    return list(cur.fetchall()) if cur.description else []


def run_one(
    conn: psycopg.Connection[Any], name: str, params: dict[str, Any] | None = None
) -> Row | None:
    """The first row of :func:`run`, or None."""
    rows = run(conn, name, params)
    return rows[0] if rows else None
