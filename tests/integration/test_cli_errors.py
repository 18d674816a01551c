"""A traceback is a bug: every ``mailer`` command, found by walking click's command tree (so
a new command is covered without touching this file), given bad input (an unreachable or
unusable database, an unmigrated database, invalid values, a busy port) ends within a few
seconds with a non-zero exit and one clear line on stderr."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import psycopg
import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from psycopg.conninfo import make_conninfo

from mailer.cli import main
from tests.conftest import database_url

#: Seconds any command may take to fail (the probe connection gives up after 2; a name
#: lookup is not bounded by it; 2 cores shared by parallel test runs).
FAST = 8.0

#: Arguments that get each command past its own checks to the database. A command not
#: listed gets arguments made from its required parameters (see ``synthesized``).
VALID_ARGS: dict[str, list[str]] = {
    "accounts add": ["--email", "a@shop.example", "--smtp-host", "h"],
    "accounts check": ["1"],
    "accounts edit": ["1", "--smtp-port", "25"],
    "accounts pause": ["1"],
    "accounts remove": ["1"],
    "accounts resume": ["1"],
    "accounts set-limits": ["1", "--daily-limit", "5"],
    "api-keys create": ["--name", "ci", "--scope", "send"],
    "contacts erase": ["x@example.org", "--yes"],
    "db prune": ["--older-than", "90d"],
    "recurring add": ["n", "--cron", "@daily", "--to", "x@example.org"],
    "demo": ["--emails", "1", "--timeout", "5", "--web-port", "0"],  # 8025 may be busy
    "dkim add": ["shop.example", "--selector", "s1", "--key-file", "{key}"],
    "dkim generate": ["shop.example", "--selector", "s1"],
    "suppress add": ["x@example.org"],
    "suppress remove": ["x@example.org"],
    "webhooks add": ["https://hooks.example.org/in", "--events", "sent"],
    "web": ["--port", "0"],
}
#: Commands that never open the database.
NO_DATABASE = {"sink"}
#: Commands that work on a database without the Mailer schema: they create it (``db
#: migrate``, ``demo`` makes its own database), only print where it is (``db url``), or
#: manage the embedded server only (``db stop`` refuses any DATABASE_URL, schema or not).
NEEDS_NO_SCHEMA = {"db migrate", "db url", "demo", "sink"}


def commands(group: click.Group = main, path: tuple[str, ...] = ()) -> Iterator[str]:
    """Every leaf command of the tree, as ``"group command"``."""
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))
        else:
            yield " ".join((*path, name))


def command_of(name: str) -> click.Command:
    command: Any = main
    for part in name.split():
        command = command.commands[part]
    return command


def synthesized(name: str, tmp_path: Path) -> list[str]:
    """Plausible values for a command's required parameters."""
    args: list[str] = []
    for param in command_of(name).params:
        if not param.required:
            continue
        if isinstance(param.type, click.Choice):
            value = str(param.type.choices[0])
        elif isinstance(param.type, click.types.IntParamType):
            value = "1"
        elif isinstance(param.type, click.File | click.Path):
            value = str(tmp_path / "input.txt")
            Path(value).write_text("x@example.org\n")
        else:
            value = "x@example.org" if "email" in (param.name or "") else "shop.example"
        args.extend([value] if isinstance(param, click.Argument) else [param.opts[0], value])
    return args


def args_for(name: str, tmp_path: Path) -> list[str]:
    if name not in VALID_ARGS:
        return [*name.split(), *synthesized(name, tmp_path)]
    key = tmp_path / "dkim.pem"
    if not key.exists():
        private = ed25519.Ed25519PrivateKey.generate()
        key.write_bytes(
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return [*name.split(), *(arg.format(key=key) for arg in VALID_ARGS[name])]


@pytest.fixture
def run_cli(tmp_path: Path) -> Iterator[Any]:
    """Run ``mailer ARGS`` in-process with ``DATABASE_URL``; return the result, after
    checking it failed fast, in one line, without a traceback."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    runner = CliRunner()

    def run(url: str, args: list[str], *, lines: int = 1) -> Result:
        env = {
            "DATABASE_URL": url,
            "MAILER_HOME": str(tmp_path / "home"),
            "MAILER_SECRET_KEY": "k",
            "MAILER_CONNECT_TIMEOUT_SECONDS": "2",
        }
        started = time.monotonic()
        answers = "Secret-passw0rd-1\n" * 4  # any prompt (a password and its confirmation)
        result = runner.invoke(main, args, env=env, input=answers, catch_exceptions=False)
        took = time.monotonic() - started
        where = f"mailer {' '.join(args)}: {result.output}"
        assert result.exit_code != 0, where
        assert "Traceback" not in result.output, where
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
        assert len(errors) == 1, where
        if lines == 1:
            assert result.stderr.strip() == errors[0], where
        assert took < FAST, f"{where} took {took:.1f}s"
        return result

    yield run
    root.handlers[:], root.level = saved[0], saved[1]


def test_every_command_is_exercised():
    names = set(commands())
    assert {"accounts add", "accounts remove", "status", "sink", "db stop"} <= names
    assert not set(VALID_ARGS) - names, "VALID_ARGS names a command that no longer exists"


@pytest.mark.parametrize(
    "url",
    [
        "notaurl",
        "postgresql://postgres@nonexistent-host.invalid/mailer",
        "postgresql://postgres@127.0.0.1:1/mailer",  # nothing listens there
    ],
)
def test_every_command_with_an_unusable_database_url(run_cli, tmp_path, url):
    for name in sorted(set(commands()) - NO_DATABASE):
        result = run_cli(url, args_for(name, tmp_path))
        if name != "db stop":  # which refuses any DATABASE_URL
            assert "database" in result.stderr or "PostgreSQL URL" in result.stderr, name


def test_every_command_on_a_missing_database(run_cli, tmp_path, server_url):
    url = database_url(server_url, "mailer_no_such_database")
    for name in sorted(set(commands()) - NO_DATABASE - {"db stop"}):
        assert 'database "mailer_no_such_database" does not exist' in (
            run_cli(url, args_for(name, tmp_path)).stderr
        ), name


def test_every_command_on_an_unmigrated_database(run_cli, tmp_path, empty_db_url):
    for name in sorted(set(commands()) - NEEDS_NO_SCHEMA - {"db stop"}):
        result = run_cli(empty_db_url, args_for(name, tmp_path))
        assert result.stderr == (
            "Error: database has no Mailer schema: run `mailer db migrate`\n"
        ), name


@pytest.mark.parametrize(
    "args, says",
    [
        (["accounts", "add", "--email", "nope", "--smtp-host", "h"], "invalid --email 'nope'"),
        (
            [
                "accounts",
                "add",
                "--email",
                "a@x.example",
                "--smtp-host",
                "h",
                "--hourly-limit",
                "-1",
            ],
            "--hourly-limit must be 0 or more",
        ),
        (["accounts", "add", "--email", "a@x.example"], "--smtp-host is required"),
        (["accounts", "pause", "99"], "no sender account with id 99"),
        (["accounts", "remove", "99"], "no sender account with id 99"),
        (["accounts", "set-limits", "1", "--daily-limit", "-3"], "--daily-limit must be 0 or more"),
        (
            ["accounts", "set-limits", "1", "--min-delay-ms", "-3"],
            "--min-delay-ms must be 0 or more",
        ),
        (["worker", "--account-id", "99"], "no sender account with id 99"),
        (["suppress", "add", "x@example.org", "--expires-in-hours", "-5"], "not in the range"),
        (["suppress", "add", "x@example.org", "--expires-in-hours", "nan"], "number of hours"),
        (["suppress", "add", "x@example.org", "--expires-in-hours", "1e30"], "not in the range"),
        (["db", "prune", "--older-than", "99999999999999999999d"], "too long"),
        (["db", "prune", "--older-than", "9999999w"], "at most 36600 days"),
        (["sink", "--port", "70000"], "not in the range 0<=x<=65535"),
        (["web", "--port", "-1"], "not in the range 0<=x<=65535"),
        (["accounts", "edit", "1"], "nothing to change"),
        (["accounts", "check"], "give the account"),
        (["db", "prune", "--older-than", "soon"], "--older-than"),
        (["suppress", "add", "not-an-address"], "not-an-address"),
        (["webhooks", "add", "ftp://x", "--events", "sent"], "ftp://x"),
        (["webhooks", "enable", "99"], "99"),
        (["bounces", "show", "99"], "99"),
        (["api-keys", "revoke", "nope"], "nope"),
        (["status", "--no-such-option"], "No such option"),
        (["worker", "--account-id", "x"], "'x' is not a valid integer"),
    ],
)
def test_invalid_values_are_one_line(run_cli, db_url, args, says):
    result = run_cli(db_url, args, lines=0)  # usage errors come with the usage line
    assert says in result.stderr
    assert "unexpected error" not in result.stderr


def test_a_suppression_file_that_is_not_utf8_is_named(run_cli, db_url, tmp_path):
    binary = tmp_path / "list.csv"
    binary.write_bytes(b"\xff\xfe\x00\x01")
    result = run_cli(db_url, ["suppress", "import", str(binary)])
    assert result.stderr.startswith(f"Error: {binary} is not UTF-8 text")


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.mark.parametrize(
    "args",
    [["sink", "--port", "{port}"], ["web", "--port", "{port}"], ["demo", "--web-port", "{port}"],
     ["demo", "--sink-port", "{port}"]],
)  # fmt: skip
def test_a_busy_port_is_named_with_its_holder(run_cli, db_url, busy_port, args):
    args = [a.format(port=busy_port) for a in args]
    result = run_cli(db_url, args)
    assert f"port {busy_port} on 127.0.0.1 is already in use" in result.stderr
    assert "python" in result.stderr.lower()  # the holder: this test's own process


@pytest.fixture
def unprivileged_url(db_url: str) -> Iterator[str]:
    """``db_url`` as a role that may connect but not read Mailer's tables."""
    role = f"mailer_noaccess_{os.getpid()}"
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(f'DROP ROLE IF EXISTS "{role}"')
        conn.execute(f'CREATE ROLE "{role}" NOLOGIN')
    try:
        yield make_conninfo(db_url, options=f"-c role={role}")
    finally:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(f'DROP ROLE "{role}"')


def test_a_role_without_privileges_is_named_as_such(run_cli, unprivileged_url):
    for args in (["accounts", "list"], ["db", "migrate"]):
        result = run_cli(unprivileged_url, args)
        assert "the database role may not use Mailer's tables: permission denied" in (
            result.stderr
        ), args
        assert "PostgreSQL URL" not in result.stderr
