"""The object every ``mailer`` command receives: settings and the database, resolved once.

Command modules (``mailer.cli`` and the groups it registers) take it with ``@pass_ctx``.

Before a command touches the database, one probe connection (bounded by
``MAILER_CONNECT_TIMEOUT_SECONDS``) checks that the server answers and that the Mailer
schema is there, so a wrong ``DATABASE_URL`` or an unmigrated database ends the command
at once with one line saying so (exit 75, so the orchestrator restarts a worker that met
it without blaming its account); an older schema is a warning (a rolling upgrade). The
embedded database (``DATABASE_URL`` unset) is Mailer's own: a missing or older schema
there is migrated automatically, with a note on stderr. A database named by
``DATABASE_URL`` is never migrated implicitly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from mailer.config import Settings, env_name
from mailer.db import Database, DatabaseUnavailable, applied_migrations, resolve_database_url
from mailer.sql_queries import migration_scripts

T = TypeVar("T")

MIGRATE_HINT = "run `mailer db migrate`"
#: Exit status when the database cannot be used (EX_TEMPFAIL, the worker's
#: ``EXIT_DB_UNAVAILABLE``): the orchestrator restarts such a worker without counting it
#: against its account.
EXIT_DATABASE_UNUSABLE = 75


class DatabaseUnusable(click.ClickException):
    """The database cannot be reached or has no Mailer schema: one line, exit 75."""

    exit_code = EXIT_DATABASE_UNUSABLE


class Context:
    """What every command needs: settings, and the database URL resolved once."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._server_url: str | None = None
        self._applied: set[int] | None = None
        self._checked = False

    @property
    def where(self) -> str:
        """The database in words, for messages."""
        if self.settings.database_url:
            return "the database of DATABASE_URL"
        return f"the embedded database in {self.settings.home}"

    @property
    def server_url(self) -> str:
        """The database URL, the server probed (schema not checked): for ``db migrate``,
        ``db url`` and ``demo``, which create or migrate the schema themselves."""
        if self._server_url is None:
            url = resolve_database_url(self.settings)
            try:
                self._applied = applied_migrations(url, self.settings.connect_timeout_seconds)
            except DatabaseUnavailable as exc:
                raise DatabaseUnusable(str(exc)) from None
            self._server_url = url
        return self._server_url

    @property
    def url(self) -> str:
        """The database URL of a database with a current Mailer schema."""
        url = self.server_url
        if not self._checked:
            self._check_schema(url)
            self._checked = True
        return url

    def _check_schema(self, url: str) -> None:
        applied = self._applied
        pending = [
            f"{v:04d}_{name}" for v, name, _ in migration_scripts() if v not in (applied or ())
        ]
        if not pending:
            return
        if not self.settings.database_url:
            what = "has no Mailer schema" if applied is None else "is behind this Mailer"
            click.echo(f"note: {self.where} {what}; migrating it", err=True)
            from mailer.migrate import migrate

            self._run(url, migrate)
            return
        if applied is None:
            raise DatabaseUnusable(f"database has no Mailer schema: {MIGRATE_HINT}")
        click.echo(  # a rolling upgrade may run new code a moment before the migration
            f"warning: database schema is behind this Mailer ({len(pending)} pending "
            f"migrations, {pending[0]} first): {MIGRATE_HINT}",
            err=True,
        )

    def worker_url(self) -> str:
        """``mailer worker``'s database URL. Under ``mailer run`` with
        ``MAILER_WORKER_DATABASE_URL`` (its queries go through PgBouncer) the probe goes
        there too and ``DATABASE_URL`` (which the orchestrator checked) is not touched, so
        starting workers opens no direct connections; otherwise :attr:`url`."""
        if not (self.settings.lock_held_by_parent and self.settings.worker_database_url):
            return self.url
        self.check_worker_url()
        return resolve_database_url(self.settings)

    def check_worker_url(self) -> None:
        """``mailer run`` with ``MAILER_WORKER_DATABASE_URL`` (PgBouncer): one probe through
        it, so a wrong one ends the command with one line instead of failing every worker."""
        url = self.settings.worker_database_url
        if not url:
            return
        name = env_name("worker_database_url")
        try:
            applied = applied_migrations(url, self.settings.connect_timeout_seconds)
        except DatabaseUnavailable as exc:
            raise DatabaseUnusable(f"{name}: {exc}") from None
        if applied is None:
            raise DatabaseUnusable(
                f"{name}: database has no Mailer schema (it must reach DATABASE_URL's database)"
            )

    def run_db(self, fn: Callable[[Database], Awaitable[T]], *, schema: bool = True) -> T:
        """Run ``fn(db)`` on a fresh pool, in a fresh event loop; ``schema=False`` skips the
        schema check (``db migrate``)."""
        return self._run(self.url if schema else self.server_url, fn)

    @staticmethod
    def _run(url: str, fn: Callable[[Database], Awaitable[T]]) -> T:
        async def go() -> T:
            async with Database(url) as db:
                return await fn(db)

        return asyncio.run(go())


pass_ctx = click.make_pass_decorator(Context)
