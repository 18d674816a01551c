"""``mailer admin create-user EMAIL``: a user of the operator console (/admin)."""

from __future__ import annotations

import os
import sys

import click
import psycopg
from psycopg.rows import dict_row

from mailer.admin_users import AdminUsers
from mailer.cli_context import Context, pass_ctx


@click.group("admin")
def admin() -> None:
    """Operator console (/admin) users."""


@admin.command("create-user")
@click.argument("email")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input.",
)
@click.option(
    "--reset-password",
    is_flag=True,
    help="If the user exists, set its password instead of refusing.",
)
@pass_ctx
def create_user(ctx: Context, email: str, password_stdin: bool, reset_password: bool) -> None:
    """Add a console user. The password comes from --password-stdin, else
    MAILER_ADMIN_PASSWORD, else a prompt; at least 12 characters."""
    password = _password(password_stdin)
    with psycopg.connect(ctx.url, autocommit=True, row_factory=dict_row) as conn:
        try:
            user = AdminUsers(conn).create(email, password, replace=reset_password)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"admin user {user.id} <{user.email}> ready: log in at /admin/login")


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if os.environ.get("MAILER_ADMIN_PASSWORD"):
        return os.environ["MAILER_ADMIN_PASSWORD"]
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)
