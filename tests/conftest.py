"""Shared fixtures: a real PostgreSQL (the embedded one unless TEST_DATABASE_URL or
DATABASE_URL names a server), a migrated template database, and one fresh database per
test cloned from it with CREATE DATABASE ... TEMPLATE."""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from psycopg.conninfo import make_conninfo

from mailer.cli import main
from mailer.config import Settings
from mailer.db import Database
from mailer.migrate import migrate


def _server_url() -> Iterator[str]:
    url = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        with tempfile.TemporaryDirectory(prefix="mailer-pg-") as data_dir:
            server = pgserver.get_server(data_dir, cleanup_mode="stop")
            yield server.get_uri()
            server.cleanup()


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """URL of the PostgreSQL server the tests use (any database on it)."""
    yield from _server_url()


def database_url(server_url: str, name: str) -> str:
    return make_conninfo(server_url, dbname=name)


@pytest.fixture(scope="session")
def template_db(server_url: str) -> Iterator[str]:
    """Name of a migrated database each test clones."""
    name = f"mailer_tpl_{os.getpid()}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')

    async def go() -> None:
        async with Database(database_url(server_url, name)) as db:
            await migrate(db)

    asyncio.run(go())
    yield name
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def scratch_database(server_url: str, template: str) -> Iterator[str]:
    """URL of a new database cloned from ``template``, dropped afterwards."""
    name = f"mailer_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield database_url(server_url, name)
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db_url(server_url: str, template_db: str) -> Iterator[str]:
    """URL of a fresh, migrated database for this test only."""
    yield from scratch_database(server_url, template_db)


@pytest.fixture
def empty_db_url(server_url: str) -> Iterator[str]:
    """URL of a fresh database without the Mailer schema, for this test only."""
    yield from scratch_database(server_url, "template0")


@pytest.fixture
def sql(db_url: str) -> Iterator[psycopg.Connection]:
    """A plain autocommit connection to the test database, for setup and assertions."""
    from psycopg.rows import dict_row

    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
        yield conn


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    async with Database(db_url) as database:
        yield database


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Engine settings tuned for tests: fast retries, heartbeats and polls."""
    return Settings(
        home=tmp_path / "home",
        secret_key="test-secret-key",
        retry_base_seconds=0.2,
        retry_max_seconds=1.0,
        account_backoff_base_seconds=0.5,
        account_backoff_max_seconds=2.0,
        heartbeat_seconds=0.3,
        poll_seconds=1.0,
        lease_seconds=5.0,
        smtp_timeout_seconds=5.0,
        shutdown_grace_seconds=5.0,
        orchestrator_poll_seconds=0.5,
    )


@pytest.fixture
def mailer(db_url: str, tmp_path: Path) -> Iterator[Any]:
    """Run ``mailer ARGS...`` in-process against the test database; return its output."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    runner = CliRunner()
    env = {
        "DATABASE_URL": db_url,
        "MAILER_HOME": str(tmp_path / "home"),
        "MAILER_SECRET_KEY": "test-secret-key",
    }

    def run(*args: str, input: str | None = None, code: int = 0) -> str:
        result = runner.invoke(main, list(args), env=env, input=input, catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    yield run
    root.handlers[:], root.level = saved[0], saved[1]
