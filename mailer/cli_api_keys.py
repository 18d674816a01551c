"""``mailer api-keys create|list|revoke``: keys for the HTTP API (shown once, stored as a
hash; see :mod:`mailer.api_keys`)."""

from __future__ import annotations

import click
import psycopg
from psycopg.rows import dict_row

from mailer.api_keys import SCOPES, ApiKey, ApiKeyManager
from mailer.cli_context import Context, pass_ctx
from mailer.status import to_json


@click.group("api-keys")
def api_keys() -> None:
    """HTTP API keys: create (shown once), list, revoke."""


def _manager(ctx: Context) -> tuple[psycopg.Connection, ApiKeyManager]:
    conn = psycopg.connect(ctx.url, autocommit=True, row_factory=dict_row)
    return conn, ApiKeyManager(conn)


@api_keys.command("create")
@click.option("--name", required=True, help="What the key is for (shown by list).")
@click.option(
    "--scope",
    type=click.Choice(SCOPES),
    required=True,
    help="read: GET only; send: read and queue mail; admin: everything.",
)
@click.option(
    "--pool",
    "pools",
    multiple=True,
    help="Only send through this pool (repeatable); the key then sees only its rows.",
)
@pass_ctx
def create(ctx: Context, name: str, scope: str, pools: tuple[str, ...]) -> None:
    """Create a key and print it: it is shown this once and never again."""
    conn, manager = _manager(ctx)
    with conn:
        try:
            created = manager.create(name, scope, pools)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    click.echo(created.secret)
    click.echo(
        f"(id {created.key.id}, prefix {created.key.prefix}, scope {scope}; "
        "store it now: only its hash is kept)",
        err=True,
    )


@api_keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def list_keys(ctx: Context, as_json: bool) -> None:
    """Keys with their prefix, scope, pools and last use (never the key)."""
    conn, manager = _manager(ctx)
    with conn:
        keys = manager.list()
    if as_json:
        click.echo(to_json([_row(k) for k in keys]))
        return
    for k in keys:
        state = "revoked" if k.revoked_at else "active"
        pools = ",".join(k.pools) or "*"
        used = k.last_used_at.isoformat(timespec="seconds") if k.last_used_at else "never"
        click.echo(
            f"{k.id:>4}  {k.prefix}  {k.scope:<5}  pools={pools}  {state:<7}  "
            f"last used {used}  {k.name}"
        )


def _row(key: ApiKey) -> dict[str, object]:
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "scope": key.scope,
        "pools": list(key.pools),
        "created_at": key.created_at.isoformat(),
        "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


@api_keys.command("revoke")
@click.argument("key")
@pass_ctx
def revoke(ctx: Context, key: str) -> None:
    """Revoke KEY (its id or prefix): it stops working at once."""
    conn, manager = _manager(ctx)
    with conn:
        revoked = manager.revoke(key)
    if revoked is None:
        raise click.ClickException(f"no active key {key!r}")
    click.echo(f"revoked {revoked.prefix} ({revoked.name})")
