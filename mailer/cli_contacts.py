"""``mailer contacts export|erase EMAIL``: an address's personal data, exported as JSON or
erased (see :mod:`mailer.contacts`); both recorded in ``contact_audit`` as ``cli:<user>``."""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import psycopg
from psycopg.rows import dict_row

from mailer.cli_context import Context, pass_ctx
from mailer.contacts import ContactError, ContactStore

T = TypeVar("T")


@click.group("contacts")
def contacts() -> None:
    """Personal data held about an address: export it, or erase it."""


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def _with_store(ctx: Context, work: Callable[[ContactStore], T]) -> T:
    with psycopg.connect(ctx.url, autocommit=True, row_factory=dict_row) as conn:
        try:
            return work(ContactStore(conn, _actor()))
        except ContactError as exc:
            raise click.BadParameter(str(exc), param_hint="EMAIL") from None


@contacts.command("export")
@click.argument("email")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write the JSON document to this file (default: standard output).",
)
@pass_ctx
def contacts_export(ctx: Context, email: str, output: Path | None) -> None:
    """Everything held about EMAIL, as JSON: its rows with their attempts and events, its
    suppressions, bounce reports and webhook events."""
    data = _with_store(ctx, lambda store: store.export(email))
    text = json.dumps(data.document(), indent=2, default=_jsonable, ensure_ascii=False)
    if output is None:
        click.echo(text)
        return
    output.write_text(text + "\n", encoding="utf-8")
    click.echo(f"{email}: {_summary(data.counts())} written to {output}", err=True)


@contacts.command("erase")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def contacts_erase(ctx: Context, email: str, yes: bool) -> None:
    """Erase EMAIL's personal data; queued mail to it is cancelled and only a hash of the
    address is kept, so it is never sent to again. This cannot be undone."""
    if not yes:
        click.confirm(f"Erase everything held about {email}? This cannot be undone", abort=True)
    erasure = _with_store(ctx, lambda store: store.erase(email))
    click.echo(f"erased: {_summary(erasure.counts)}")
    click.echo(f"kept: sha256 {erasure.email_hash} (suppressed for good)")


def _summary(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in counts.items())


def _jsonable(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)
