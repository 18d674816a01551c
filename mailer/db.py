"""The database connector: finds the server, owns the connection pool, runs named queries.

With ``DATABASE_URL`` unset Mailer starts its own PostgreSQL under ``MAILER_HOME`` (the
``pgserver`` package), so a fresh machine needs nothing installed. Everything above this
module calls queries by name (see ``sql/queries.sql``) and never builds SQL text.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from mailer.config import Settings
from mailer.embedded import embedded_database_url, one_line
from mailer.errors import MailerError
from mailer.on_demand import OnDemandConnection
from mailer.sql_queries import query

log = logging.getLogger(__name__)

Row = dict[str, Any]

#: psycopg's default: a statement run this many times on a connection is prepared.
PREPARE_THRESHOLD = 5


def resolve_database_url(settings: Settings) -> str:
    """``DATABASE_URL`` when set, else the embedded server's URL."""
    return settings.database_url or embedded_database_url(settings.home)


def worker_query_connection(settings: Settings, database_url: str) -> tuple[str, int | None]:
    """The URL a worker runs its queries on and its ``prepare_threshold``: under ``mailer
    run``, ``MAILER_WORKER_DATABASE_URL`` when set (a PgBouncer in transaction mode: its
    queries keep no session state between transactions); a standalone worker, which holds
    its own lock and LISTENs on ``database_url``, uses ``database_url`` for everything."""
    url = database_url
    if settings.lock_held_by_parent and settings.worker_database_url:
        url = settings.worker_database_url
    prepare = settings.worker_prepared_statements
    if prepare == "auto":
        prepare = "on" if url == database_url else "off"
    return url, PREPARE_THRESHOLD if prepare == "on" else None


class DatabaseUnavailable(MailerError):
    """The database cannot be reached (or the URL is not one); the message says why."""


def applied_migrations(url: str, timeout: float) -> set[int] | None:
    """Open one connection within ``timeout`` seconds; return the versions of the applied
    migrations, None when the database has no Mailer schema. Raises
    :class:`DatabaseUnavailable` with the server's or libpq's reason on one line."""
    try:
        with psycopg.connect(
            url, connect_timeout=max(1, round(timeout)), autocommit=True, row_factory=dict_row
        ) as conn:
            present = conn.execute(query("schema_exists")).fetchone()
            if not present or not present["present"]:
                return None
            return {row["version"] for row in conn.execute(query("applied_migrations"))}
    except psycopg.Error as exc:
        raise DatabaseUnavailable(_why_unusable(exc)) from None


def _why_unusable(exc: psycopg.Error) -> str:
    """One line for a database that failed ``applied_migrations``: a URL libpq cannot parse
    (a ProgrammingError the server never saw), a role that may not read Mailer's tables,
    or the connection's own error."""
    if isinstance(exc, psycopg.ProgrammingError) and exc.sqlstate is None:
        return f"not a PostgreSQL URL: {one_line(exc)}"
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return (
            f"the database role may not use Mailer's tables: {one_line(exc)} (connect as "
            "the role that ran `mailer db migrate`, or grant this one its privileges)"
        )
    return f"cannot connect to the database: {one_line(exc)}"


class Database:
    """An async connection pool (or one connection on demand) plus named-query helpers.
    Use as ``async with``."""

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 1,
        max_idle: float = 600.0,
        on_demand_idle: float | None = None,
        prepare_threshold: int | None = PREPARE_THRESHOLD,
    ) -> None:
        """A pool of ``min_size`` to ``max_size`` connections, each closed after
        ``max_idle`` seconds unused while more than ``min_size`` are open. With
        ``on_demand_idle`` (seconds) instead one connection and no pool
        (:mod:`mailer.on_demand`): opened by the first query, closed once unused that
        long; while none is open nothing wakes up. ``prepare_threshold`` None: never
        prepare statements (PgBouncer before 1.21)."""
        self.url = url
        self.pool: AsyncConnectionPool | OnDemandConnection
        if on_demand_idle is not None:
            self.pool = OnDemandConnection(
                url, idle_seconds=on_demand_idle, prepare_threshold=prepare_threshold
            )
            return
        self.pool = AsyncConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            max_idle=max_idle,
            open=False,
            kwargs={
                "autocommit": True,
                "row_factory": dict_row,
                "prepare_threshold": prepare_threshold,
            },
        )

    async def __aenter__(self) -> Database:
        await self.pool.open(wait=True, timeout=30)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[psycopg.AsyncConnection[Row]]:
        """A connection inside one transaction, committed on success."""
        async with self.pool.connection() as conn, conn.transaction():
            yield conn

    async def fetch_all(self, name: str, params: dict[str, Any] | None = None) -> list[Row]:
        """Run the named query; return all rows."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(query(name), params or {})
            return await cur.fetchall() if cur.description else []

    async def fetch_one(self, name: str, params: dict[str, Any] | None = None) -> Row | None:
        """Run the named query; return its first row or None."""
        rows = await self.fetch_all(name, params)
        return rows[0] if rows else None

    async def execute(self, name: str, params: dict[str, Any] | None = None) -> int:
        """Run the named query; return the number of rows it touched."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(query(name), params or {})
            return cur.rowcount


async def connect_listener(url: str, channels: Sequence[str]) -> psycopg.AsyncConnection[Row]:
    """A dedicated autocommit connection LISTENing on ``channels``."""
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=dict_row)
    for channel in channels:
        await conn.execute(query("listen_" + channel))
    return conn


async def wait_notifies(conn: psycopg.AsyncConnection[Any]) -> list[psycopg.Notify]:
    """Wait, without waking up until something arrives, for notifications on a dedicated
    LISTEN connection; return them (raises OperationalError when the connection is lost).

    ``AsyncConnection.notifies()`` wakes every 0.1 s to check for interrupts: ten loop
    iterations a second per idle worker, most of a 200-account host's idle CPU. Call
    ``conn.notifies(timeout=0)`` once first to drain what arrived during earlier queries.
    """
    loop = asyncio.get_running_loop()
    pgconn = conn.pgconn
    ready: asyncio.Future[None] = loop.create_future()
    fd = pgconn.socket

    def readable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await ready
    finally:
        loop.remove_reader(fd)
    pgconn.consume_input()  # OperationalError when the server closed the connection
    encoding = pgconn._encoding
    notes = []
    while (note := pgconn.notifies()) is not None:
        notes.append(
            psycopg.Notify(note.relname.decode(encoding), note.extra.decode(encoding), note.be_pid)
        )
    if pgconn.status != psycopg.pq.ConnStatus.OK:
        raise psycopg.OperationalError("the LISTEN connection was closed")
    return notes
