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


def run_unflushed(
    conn: psycopg.Connection[Any], name: str, params: dict[str, Any] | None = None
) -> list[Row]:
    """:func:`run` in a transaction whose commit does not wait for its WAL to reach the
    disk (``synchronous_commit = off``): other sessions see it at once as usual, but a
    crash of PostgreSQL may lose it. For bookkeeping whose loss is harmless (a request
    count, the claim of a request that had not finished): it saves a disk flush per API
    request, and the next synchronous commit flushes it anyway."""
    with conn.transaction():
        run(conn, "local_unflushed_commit")
        return run(conn, name, params)
