"""The web app's database access: a small synchronous pool running named queries, bounded.

Every wait is bounded by ``MAILER_TRACKING_DB_TIMEOUT_SECONDS``: for a pooled connection
(``PoolTimeout``), for connecting, and for each statement (``statement_timeout``), so a
slow or unreachable database costs a request at most that long. The pool is opened on
first use in each process, so it is safe to build the app before a server forks.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from mailer.sql_queries import query

Row = dict[str, Any]

#: What a database outage or a timeout raises.
DATABASE_ERRORS: tuple[type[Exception], ...] = (psycopg.Error, PoolTimeout)


class Store:
    """Named queries over a lazily opened ``psycopg_pool.ConnectionPool``."""

    def __init__(self, url: str, *, timeout: float, max_size: int = 4) -> None:
        self.url = url
        self.timeout = timeout
        self.max_size = max_size
        self._pool: ConnectionPool | None = None
        self._pid = 0
        self._closed = False
        self._lock = threading.Lock()

    def _get_pool(self) -> ConnectionPool:
        with self._lock:
            if self._closed:
                raise PoolClosed("the tracking app's database pool is closed")
            if self._pool is None or self._pid != os.getpid():
                self._pool = ConnectionPool(
                    self.url,
                    min_size=1,
                    max_size=self.max_size,
                    open=False,
                    timeout=self.timeout,
                    check=ConnectionPool.check_connection,
                    name="tracking",
                    kwargs={
                        "autocommit": True,
                        "row_factory": dict_row,
                        "connect_timeout": max(2, round(self.timeout)),
                        # JIT compiles a plan in hundreds of ms: more than the web
                        # app's short queries (the console's on a large queue) take.
                        "options": f"-c statement_timeout={int(self.timeout * 1000)} -c jit=off",
                    },
                )
                self._pool.open(wait=False)
                self._pid = os.getpid()
            return self._pool

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Row]]:
        """A pooled autocommit connection (PoolTimeout if none comes in time)."""
        with self._get_pool().connection(timeout=self.timeout) as conn:
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Row]]:
        """A pooled connection inside one transaction, committed on success."""
        with self.connection() as conn, conn.transaction():
            yield conn

    def fetch_all(self, name: str, params: dict[str, Any] | None = None) -> list[Row]:
        """Run the named query; return all rows."""
        with self.connection() as conn:
            cur = conn.execute(query(name), params or {})
            return cur.fetchall() if cur.description else []

    def fetch_one(self, name: str, params: dict[str, Any] | None = None) -> Row | None:
        """Run the named query; return its first row or None."""
        rows = self.fetch_all(name, params)
        return rows[0] if rows else None

    def close(self) -> None:
        """Close the pool for good; later queries raise PoolClosed."""
        with self._lock:
            if self._pool is not None and self._pid == os.getpid():
                self._pool.close()
            self._pool, self._closed = None, True


def run(
    conn: psycopg.Connection[Row], name: str, params: dict[str, Any] | None = None
) -> list[Row]:
    """Run a named query on ``conn`` (inside a caller's transaction); return its rows."""
    cur = conn.execute(query(name), params or {})
    return cur.fetchall() if cur.description else []
