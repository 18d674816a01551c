"""The CLI's last line of defence: an unexpected exception becomes one clear line on stderr
and exit status 1, never a traceback (``MAILER_DEBUG=1`` shows the traceback instead).

Commands report the errors they expect themselves (``click.ClickException``); this turns
the rest into words: database errors by their kind and constraint, Mailer's own errors by
their message, anything else by its type and message.
"""

from __future__ import annotations

import os
from typing import Any

import click
import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import PoolTimeout

from mailer.cli_context import MIGRATE_HINT
from mailer.embedded import one_line
from mailer.errors import MailerError

#: What a schema older than the code looks like.
SCHEMA_ERRORS = (pg_errors.UndefinedTable, pg_errors.UndefinedColumn, pg_errors.UndefinedFunction)


def describe(exc: BaseException) -> str:
    """One line saying what went wrong."""
    if isinstance(exc, MailerError):
        return one_line(exc)
    if isinstance(exc, SCHEMA_ERRORS):
        return f"database schema does not match this Mailer ({one_line(exc)}): {MIGRATE_HINT}"
    if isinstance(exc, PoolTimeout):  # an OperationalError without diagnostics
        return f"cannot connect to the database: {one_line(exc)}"
    if isinstance(exc, psycopg.Error):
        return _database_error(exc)
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return f"unexpected error: {type(exc).__name__}: {one_line(exc)} (MAILER_DEBUG=1 shows where)"


def _database_error(exc: psycopg.Error) -> str:
    diag = exc.diag
    text = diag.message_primary or one_line(exc)
    if diag.constraint_name:
        text += f" (constraint {diag.constraint_name})"
    if diag.message_hint:
        text += f"; {diag.message_hint}"
    kind = "rejected by the database" if isinstance(exc, psycopg.IntegrityError) else "database"
    return " ".join(f"{kind}: {text}".split())


class MailerGroup(click.Group):
    """The ``mailer`` group: runs a command and turns what escapes it into one line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            if os.environ.get("MAILER_DEBUG", "").strip() not in ("", "0"):
                raise
            raise click.ClickException(describe(exc)) from None
