"""What the CLI's last-resort handler says for exceptions no command expected."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner
from psycopg_pool import PoolTimeout

from mailer.cli_context import EXIT_DATABASE_UNUSABLE
from mailer.cli_errors import MailerGroup, describe
from mailer.errors import MailerError
from mailer.worker import EXIT_DB_UNAVAILABLE


def test_an_unusable_database_exits_as_the_orchestrator_expects():
    assert EXIT_DATABASE_UNUSABLE == EXIT_DB_UNAVAILABLE  # restarted, not counted as a crash


def test_each_kind_of_error_is_one_line():
    assert describe(MailerError("account 3 is\nbusy")) == "account 3 is busy"
    assert describe(PoolTimeout("couldn't get a connection")).startswith(
        "cannot connect to the database: "
    )
    assert describe(FileNotFoundError(2, "No such file or directory", "/x")) == (
        "No such file or directory: /x"
    )
    line = describe(ValueError("bad\nthing"))
    assert line == "unexpected error: ValueError: bad thing (MAILER_DEBUG=1 shows where)"


@click.group(cls=MailerGroup)
def cli() -> None:
    pass


@cli.command()
def boom() -> None:
    raise KeyError("surprise")


def test_the_group_turns_an_exception_into_one_line_unless_debugging():
    result = CliRunner().invoke(cli, ["boom"])
    assert result.exit_code == 1
    assert (
        result.stderr
        == "Error: unexpected error: KeyError: 'surprise' (MAILER_DEBUG=1 shows where)\n"
    )
    with pytest.raises(KeyError):
        CliRunner().invoke(cli, ["boom"], env={"MAILER_DEBUG": "1"}, catch_exceptions=False)
