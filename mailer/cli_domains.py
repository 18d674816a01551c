"""Sending-domain commands: ``mailer dkim add|generate|list`` and ``mailer dns-check``."""

from __future__ import annotations

from typing import Any

import click

from mailer.cli_context import Context, pass_ctx
from mailer.dkim_keys import ALGORITHMS, DkimKey, DkimKeyError, DkimKeyStore

DEFAULT_SELECTOR = "mailer"


@click.group("dkim")
def dkim() -> None:
    """DKIM keys: SMTP accounts whose From domain has one sign their mail with it."""


def _store(ctx: Context, db: Any) -> DkimKeyStore:
    from mailer.credentials import CredentialBox, secret_key

    return DkimKeyStore(db, CredentialBox(secret_key(ctx.settings)))


def _save(ctx: Context, key: DkimKey) -> None:
    async def go(db: Any) -> None:
        await _store(ctx, db).save(key)

    ctx.run_db(go)
    click.echo(f"DKIM key for {key.domain} ({key.algorithm}, selector {key.selector}) stored.")
    click.echo("Publish this TXT record:")
    click.echo(f"{key.record_name}. IN TXT {_quoted(key.txt_record)}")


def _domain(text: str) -> str:
    """The DOMAIN argument as a mail domain (lower-case ASCII), or a usage error."""
    from mailer.addresses import validated_domain
    from mailer.errors import InvalidMessageError

    try:
        return validated_domain(text, what="DOMAIN")
    except InvalidMessageError as exc:
        raise click.BadParameter(str(exc), param_hint="DOMAIN") from None


def _quoted(text: str) -> str:
    """A TXT value as DNS zone files write it: strings of at most 255 characters."""
    return " ".join(f'"{text[i : i + 255]}"' for i in range(0, len(text), 255))


@dkim.command("add")
@click.argument("domain")
@click.option("--selector", required=True, help="The DNS selector (<selector>._domainkey).")
@click.option("--key-file", type=click.File("r"), required=True, help="PEM private key; - = stdin.")
@pass_ctx
def dkim_add(ctx: Context, domain: str, selector: str, key_file: Any) -> None:
    """Store DOMAIN's signing key (RSA or Ed25519 PEM), encrypted; replaces the old one."""
    domain = _domain(domain)
    try:
        key = DkimKey.from_pem(domain, selector, key_file.read())
    except DkimKeyError as exc:
        raise click.BadParameter(str(exc), param_hint="--key-file") from None
    _save(ctx, key)


@dkim.command("generate")
@click.argument("domain")
@click.option("--selector", default=DEFAULT_SELECTOR, help="The DNS selector.")
@click.option("--algorithm", type=click.Choice(ALGORITHMS), default="rsa-sha256")
@click.option("--bits", type=click.IntRange(1024, 4096), default=2048, help="RSA key size.")
@pass_ctx
def dkim_generate(ctx: Context, domain: str, selector: str, algorithm: str, bits: int) -> None:
    """Make and store a new key for DOMAIN; print the DNS TXT record to publish."""
    _save(ctx, DkimKey.generate(_domain(domain), selector, algorithm, bits))


@dkim.command("list")
@pass_ctx
def dkim_list(ctx: Context) -> None:
    """Domains with a key, their selector and algorithm (never the private key)."""

    async def go(db: Any) -> list[dict[str, Any]]:
        return await _store(ctx, db).list()

    for row in ctx.run_db(go):
        click.echo(f"{row['domain']:<32} {row['selector']:<16} {row['algorithm']}")


@click.command("dns-check")
@click.argument("domain")
@pass_ctx
def dns_check(ctx: Context, domain: str) -> None:
    """Print the SPF, DKIM and DMARC records DOMAIN needs and whether DNS has them.
    Exit 1 when one is missing or wrong."""
    from mailer.accounts import AccountManager
    from mailer.addresses import comparable_domain
    from mailer.dns_check import check_domain, dns_lookup

    domain = _domain(domain)
    try:
        lookup = dns_lookup(ctx.settings.dns_nameserver)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None

    async def load(db: Any) -> tuple[list[Any], DkimKey | None]:
        accounts = [
            a for a in await AccountManager(db).list() if comparable_domain(a.domain) == domain
        ]
        return accounts, await _store(ctx, db).for_domain(domain)

    accounts, key = ctx.run_db(load)
    findings = check_domain(domain, lookup, accounts, key)
    for f in findings:
        click.echo(f"{f.kind:<6} {f.status.upper():<8} {f.name}")
        click.echo(f"       needs: {f.expected}")
        click.echo(f"       found: {f.detail}")
    if not all(f.ok for f in findings):
        raise click.ClickException(f"{domain}: DNS records missing or wrong (see above)")
