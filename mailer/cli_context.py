"""The object every ``mailer`` command receives: settings and the database, resolved once.

Command modules (``mailer.cli`` and the groups it registers) take it with ``@pass_ctx``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from mailer.config import Settings
from mailer.db import Database, resolve_database_url

T = TypeVar("T")


class Context:
    """What every command needs: settings, and the database URL resolved once."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            self._url = resolve_database_url(self.settings)
        return self._url

    def run_db(self, fn: Callable[[Database], Awaitable[T]]) -> T:
        """Run ``fn(db)`` on a fresh pool, in a fresh event loop."""

        async def go() -> T:
            async with Database(self.url) as db:
                return await fn(db)

        return asyncio.run(go())


pass_ctx = click.make_pass_decorator(Context)
