"""DKIM signing by a real worker (verified with dkimpy on the bytes the SMTP server
received), ``mailer dkim add|generate|list`` and ``mailer dns-check`` against a local
stand-in nameserver."""

from __future__ import annotations

import asyncio
from pathlib import Path

import dkim
import pytest

from mailer.config import Settings
from mailer.credentials import CredentialBox
from mailer.db import Database
from mailer.dkim_keys import DkimKey, DkimKeyStore
from tests.support.dns_server import TxtServer
from tests.support.mailer_env import add_account, insert_emails, running_worker
from tests.support.smtp_server import ScriptedSMTPServer

BOX = CredentialBox("test-secret-key")


def dnsfunc_for(key: DkimKey):
    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        return key.txt_record.encode() if name == f"{key.record_name}.".encode() else None

    return dnsfunc


@pytest.mark.parametrize("algorithm", ["rsa-sha256", "ed25519-sha256"])
async def test_smtp_mail_of_a_domain_with_a_key_is_signed(
    sql, db_url: str, db: Database, settings: Settings, algorithm: str
) -> None:
    key = DkimKey.generate("shop.example", "s2026", algorithm)
    await DkimKeyStore(db, BOX).save(key)
    with ScriptedSMTPServer() as smtp:
        signed_account = add_account(sql, smtp, email="news@shop.example")
        other_account = add_account(sql, smtp, email="news@other.example")
        insert_emails(sql, 1, account_id=signed_account, campaign="winter")
        insert_emails(sql, 1, account_id=other_account, to_address="t@example.org")
        async with (
            running_worker(settings, db_url, signed_account),
            running_worker(settings, db_url, other_account),
        ):
            received = await smtp.wait_for_async(2)
    by_sender = {r.mail_from: r for r in received}
    signed = by_sender["news@shop.example"]
    assert signed.data.startswith(b"DKIM-Signature: ")
    assert dkim.verify(signed.data, dnsfunc=dnsfunc_for(key))
    assert signed.message["List-Id"] == "<winter.shop.example>"
    assert signed.message["Feedback-ID"] == f"winter:{signed_account}:mailer"
    assert "DKIM-Signature" not in by_sender["news@other.example"].message


def test_dkim_add_generate_and_list(mailer, sql, tmp_path: Path) -> None:
    pem = DkimKey.generate("x.example", "s", "ed25519-sha256").private_pem
    path = tmp_path / "key.pem"
    path.write_text(pem)
    out = mailer("dkim", "add", "Shop.Example", "--selector", "s1", "--key-file", str(path))
    assert "DKIM key for shop.example (ed25519-sha256, selector s1) stored." in out
    assert 's1._domainkey.shop.example. IN TXT "v=DKIM1; k=ed25519; p=' in out
    out = mailer("dkim", "generate", "news.example")
    assert 'mailer._domainkey.news.example. IN TXT "v=DKIM1; k=rsa; p=MII' in out
    assert '" "' in out  # a 2048-bit key's record is split into 255-character strings
    rows = sql.execute("SELECT * FROM dkim_keys ORDER BY domain").fetchall()
    assert [r["domain"] for r in rows] == ["news.example", "shop.example"]
    assert "PRIVATE KEY" not in rows[1]["private_key_encrypted"]
    assert BOX.decrypt(rows[1]["private_key_encrypted"]) == pem
    listing = mailer("dkim", "list")
    assert "shop.example" in listing and "PRIVATE" not in listing
    bad = tmp_path / "bad.pem"
    bad.write_text("nope")
    assert "PEM" in mailer(
        "dkim", "add", "a.example", "--selector", "s", "--key-file", str(bad), code=2
    )


def test_dns_check_reports_each_record(mailer, sql, monkeypatch: pytest.MonkeyPatch) -> None:
    sql.execute(
        "INSERT INTO sender_accounts (email, smtp_host) VALUES ('news@shop.example', "
        "'smtp.relay.example'), ('me@shop.example', NULL)"
    )
    sql.execute("UPDATE sender_accounts SET backend = 'gmail' WHERE email = 'me@shop.example'")
    out = mailer("dkim", "generate", "shop.example", "--algorithm", "ed25519-sha256")
    txt = out.rsplit("IN TXT ", 1)[1].strip().strip('"')
    good = {
        "shop.example": ["v=spf1 a:smtp.relay.example include:_spf.google.com -all", "other"],
        "mailer._domainkey.shop.example": [txt],
        "_dmarc.shop.example": ["v=DMARC1; p=quarantine; rua=mailto:d@shop.example"],
    }
    with TxtServer(good) as dns_server:
        monkeypatch.setenv("MAILER_DNS_NAMESERVER", dns_server.nameserver)
        out = mailer("dns-check", "shop.example")
    assert "SPF    OK" in out and "DKIM   OK" in out and "DMARC  OK" in out
    assert "needs: v=spf1 a:smtp.relay.example include:_spf.google.com ~all" in out

    wrong = {
        "shop.example": ["v=spf1 a:smtp.relay.example +all"],
        "mailer._domainkey.shop.example": ["v=DKIM1; k=ed25519; p=AAAA"],
    }
    with TxtServer(wrong) as dns_server:
        monkeypatch.setenv("MAILER_DNS_NAMESERVER", dns_server.nameserver)
        out = mailer("dns-check", "shop.example", code=1)
    assert "SPF    WRONG" in out and "ends in +all" in out
    assert "DKIM   WRONG" in out and "not this key's public key" in out
    assert "DMARC  MISSING" in out and "needs: v=DMARC1; p=none" in out


def test_dns_check_says_when_dns_does_not_answer(mailer, monkeypatch) -> None:
    silent = frozenset({"nokey.example", "_dmarc.nokey.example"})
    with TxtServer({}, silent=silent) as dns_server:
        monkeypatch.setenv("MAILER_DNS_NAMESERVER", dns_server.nameserver)
        monkeypatch.setattr("mailer.dns_check.DEFAULT_TIMEOUT", 0.5)
        out = mailer("dns-check", "nokey.example", code=1)
    assert "SPF    UNKNOWN" in out and "DNS did not answer" in out
    assert "DKIM   MISSING" in out and "mailer dkim generate nokey.example" in out


@pytest.mark.parametrize(
    "args",
    [
        ["dkim", "generate", "not a domain"],
        ["dkim", "generate", "a@b.example"],
        ["dns-check", ""],
        ["dns-check", "not a domain"],
    ],
)
def test_a_domain_that_is_not_one_is_refused_and_nothing_is_stored(mailer, sql, args) -> None:
    out = mailer(*args, code=2)
    assert "Invalid value for DOMAIN: invalid DOMAIN" in out
    assert sql.execute("SELECT count(*) AS n FROM dkim_keys").fetchone()["n"] == 0


def test_dkim_domains_are_stored_in_lower_case_ascii_and_found_either_way(
    mailer, sql, db_url: str
) -> None:
    out = mailer("dkim", "generate", "Bücher.Example.")
    assert "mailer._domainkey.xn--bcher-kva.example. IN TXT" in out
    row = sql.execute("SELECT domain FROM dkim_keys").fetchone()
    assert row["domain"] == "xn--bcher-kva.example"

    async def found(written: str) -> str | None:
        async with Database(db_url) as db:
            key = await DkimKeyStore(db, BOX).for_domain(written)
        return key and key.domain

    for written in ("bücher.example", "Bücher.Example.", "xn--bcher-kva.example"):
        assert asyncio.run(found(written)) == "xn--bcher-kva.example", written


@pytest.mark.parametrize("nameserver", ["not-a-host:xx", "not-a-host", "127.0.0.1:0", "[::1]:x"])
def test_a_malformed_nameserver_setting_is_named(mailer, monkeypatch, nameserver) -> None:
    monkeypatch.setenv("MAILER_DNS_NAMESERVER", nameserver)
    out = mailer("dns-check", "shop.example", code=1)
    assert out.strip() == (
        "Error: MAILER_DNS_NAMESERVER must be an IP address with an optional :port "
        f"(127.0.0.1:5353, [::1]:53), not {nameserver!r}"
    )


@pytest.mark.parametrize("asked", ["bücher.example", "xn--bcher-kva.example"])
def test_dns_check_finds_the_accounts_of_an_idn_domain_written_either_way(
    mailer, sql, monkeypatch, asked
) -> None:
    sql.execute(
        "INSERT INTO sender_accounts (email, smtp_host) VALUES "
        "('news@bücher.example', 'smtp.relay.example'), "
        "('info@xn--bcher-kva.example', 'smtp.other.example')"
    )
    with TxtServer({}) as dns_server:
        monkeypatch.setenv("MAILER_DNS_NAMESERVER", dns_server.nameserver)
        out = mailer("dns-check", asked, code=1)
    assert "needs: v=spf1 a:smtp.relay.example a:smtp.other.example ~all" in out
