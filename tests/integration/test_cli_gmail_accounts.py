"""``mailer accounts add --backend gmail`` and ``mailer accounts check`` (SMTP and Gmail),
against the scripted SMTP server and the Gmail stand-in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailer.credentials import CredentialBox
from tests.support.gmail_api import Answer, GmailStandIn
from tests.support.smtp_server import ScriptedSMTPServer
from tests.support.tls import make_ca_and_server_cert

BOX = CredentialBox("test-secret-key")


def test_gmail_account_from_a_file_is_stored_encrypted(mailer, sql, tmp_path: Path) -> None:
    with GmailStandIn() as standin:
        path = tmp_path / "key.json"
        path.write_text(standin.credentials_json("77-client.apps.googleusercontent.com"))
        out = mailer(
            "accounts", "add", "--backend", "gmail", "--email", "sender@example.com",
            "--credentials-file", str(path), "--daily-limit", "2000",
        )  # fmt: skip
    assert out == "added Gmail account 1 <sender@example.com> (active, pool default)\n"
    row = sql.execute("SELECT * FROM sender_accounts").fetchone()
    assert row["backend"] == "gmail" and row["smtp_host"] is None
    assert row["gmail_project"] == "77-client.apps.googleusercontent.com"
    assert "stand-in-secret" not in row["gmail_credentials_encrypted"]
    assert BOX.decrypt(row["gmail_credentials_encrypted"]) == path.read_text()
    listing = mailer("accounts", "list", "--json")
    assert "stand-in" not in listing and json.loads(listing)[0]["backend"] == "gmail"


def test_edit_replaces_gmail_credentials_only_of_gmail_accounts(mailer, sql) -> None:
    with GmailStandIn() as standin:
        old, new = (standin.credentials_json(f"{n}-client") for n in (1, 2))
    mailer("accounts", "add", "--backend", "gmail", "--email", "g@example.com",
           "--credentials-file", "-", input=old)  # fmt: skip
    out = mailer("accounts", "edit", "1", "--credentials-file", "-", input=new)
    assert "gmail_project 2-client" in out and "stand-in-secret" not in out
    row = sql.execute("SELECT * FROM sender_accounts").fetchone()
    assert BOX.decrypt(row["gmail_credentials_encrypted"]) == new
    mailer("accounts", "add", "--email", "s@example.com", "--smtp-host", "h")
    out = mailer("accounts", "edit", "2", "--credentials-file", "-", input=new, code=1)
    assert out == "Error: account 2 is not a Gmail account\n"


def test_gmail_credentials_from_stdin_and_refusals(mailer, sql) -> None:
    base = ("accounts", "add", "--backend", "gmail", "--email", "s@example.com")
    with GmailStandIn() as standin:
        mailer(*base, "--credentials-file", "-", input=standin.credentials_json())
    out = mailer(*base, "--credentials-file", "-", input='{"type": "x"}', code=1)
    assert out.startswith("Error: --credentials-file: the credentials file must be a service")
    assert len(out.splitlines()) == 1
    broken_key = {
        "type": "service_account",
        "client_email": "sender@shop-mail-42.iam.gserviceaccount.com",
        "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    other = ("accounts", "add", "--backend", "gmail", "--email", "t@example.com")
    out = mailer(*other, "--credentials-file", "-", input=json.dumps(broken_key), code=1)
    assert "private_key is not a usable PEM private key" in out and "AAAA" not in out
    assert "needs --credentials-file" in mailer(*base, code=2)
    assert "--smtp-host is required" in mailer("accounts", "add", "--email", "a@b.example", code=2)
    assert sql.execute("SELECT count(*) AS n FROM sender_accounts").fetchone()["n"] == 1


def test_check_a_gmail_account(mailer, sql, monkeypatch: pytest.MonkeyPatch) -> None:
    with GmailStandIn("sender@example.com") as standin:
        monkeypatch.setenv("MAILER_GMAIL_API_ENDPOINT", standin.url)
        mailer(
            "accounts", "add", "--backend", "gmail", "--email", "sender@example.com",
            "--credentials-file", "-", input=standin.credentials_json(),
        )  # fmt: skip
        out = mailer("accounts", "check", "1")
        assert "ok  getProfile: mailbox sender@example.com" in out
        assert out.endswith("account 1 <sender@example.com> works\n")
        assert standin.sent == []  # nothing was sent
        standin.fail_token(Answer(400, {"error": "invalid_grant", "error_description": "Bad"}))
        out = mailer("accounts", "check", "1", code=1)
    assert "FAILED  token: " in out and "invalid_grant" in out
    assert "does not work" in out


def test_check_an_smtp_account(mailer) -> None:
    with ScriptedSMTPServer(auth=("user", "right")) as smtp:
        for password in ("right", "wrong"):
            mailer(
                "accounts", "add", "--email", f"{password}@example.com", "--smtp-host", smtp.host,
                "--smtp-port", str(smtp.port), "--smtp-security", "none",
                "--username", "user", "--password", password,
            )  # fmt: skip
        good = mailer("accounts", "check", "1")
        bad = mailer("accounts", "check", "2", code=1)
    assert "ok  connect: " in good and "ok  AUTH: 235" in good and "ok  QUIT: 221" in good
    assert "FAILED  AUTH: " in bad and "535" in bad
    unreachable = mailer(
        "accounts", "add", "--email", "x@example.com", "--smtp-host", "127.0.0.1",
        "--smtp-port", "1", "--smtp-security", "none",
    )  # fmt: skip
    assert unreachable.startswith("added account 3")
    assert "FAILED  connect: " in mailer("accounts", "check", "3", code=1)
    with ScriptedSMTPServer() as plain:  # offers no STARTTLS, like `mailer sink`
        mailer("accounts", "add", "--email", "p@example.com", "--smtp-host", plain.host,
               "--smtp-port", str(plain.port))  # fmt: skip
        out = mailer("accounts", "check", "4", code=1)
    assert "FAILED  STARTTLS: " in out and "`mailer accounts edit 4 --smtp-security none`" in out


def test_check_uses_the_accounts_tls_settings_and_ehlo_name_as_the_worker_does(
    mailer, tmp_path: Path
) -> None:
    """A relay with a private CA: the check trusts the account's CA file (as the worker
    does), fails without it, passes with verification off, says EHLO with the account's
    name, and names an unreadable CA file instead of a traceback."""
    ca_file, server_context = make_ca_and_server_cert(tmp_path)
    with ScriptedSMTPServer(tls_context=server_context) as smtp:
        base = ("--smtp-host", smtp.host, "--smtp-port", str(smtp.port))
        mailer("accounts", "add", "--email", "a@example.com", *base, "--tls-ca-file", str(ca_file),
               "--ehlo-hostname", "mailer1.shop.example")  # fmt: skip
        mailer("accounts", "add", "--email", "b@example.com", *base)
        mailer("accounts", "add", "--email", "c@example.com", *base, "--tls-no-verify")
        trusted = mailer("accounts", "check", "1")
        untrusted = mailer("accounts", "check", "2", code=1)
        unverified = mailer("accounts", "check", "3")
    assert f"ok  TLS settings: verifying the server against {ca_file}" in trusted
    assert "ok  EHLO: mailer1.shop.example: 250 " in trusted
    assert "ok  STARTTLS: 220" in trusted and "ok  QUIT: 221" in trusted
    assert "FAILED  STARTTLS: " in untrusted and "CERTIFICATE_VERIFY_FAILED" in untrusted
    assert "ok  TLS settings: certificate verification OFF" in unverified
    assert "ok  STARTTLS: 220" in unverified
    ca_file.unlink()
    gone = mailer("accounts", "check", "1", code=1)
    assert "FAILED  TLS settings: cannot load the account's TLS CA file" in gone
    assert "`mailer accounts edit 1 --tls-ca-file PEM`" in gone
    assert "Traceback" not in gone and "  connect: " not in gone


def test_check_says_when_the_ehlo_name_is_not_fully_qualified(mailer) -> None:
    with ScriptedSMTPServer() as smtp:
        mailer("accounts", "add", "--email", "a@example.com", "--smtp-host", smtp.host,
               "--smtp-port", str(smtp.port), "--smtp-security", "none",
               "--ehlo-hostname", "localhost")  # fmt: skip
        out = mailer("accounts", "check", "1")
    assert "ok  EHLO: localhost: 250 " in out and "not a fully qualified name" in out
    assert "TLS settings" not in out and out.endswith("works\n")
