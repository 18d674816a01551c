"""Gmail API accounts in the console: added with an uploaded credentials file (stored
encrypted, never shown or audited), edited (display name, pool, new credentials), CSRF
required, bad files named plainly."""

from __future__ import annotations

import io
import json

import psycopg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask.testing import FlaskClient

from mailer.credentials import CredentialBox
from tests.console.conftest import token

PRIVATE_KEY = (
    rsa.generate_private_key(public_exponent=65537, key_size=2048)
    .private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    .decode()
)
SERVICE_ACCOUNT = json.dumps(
    {
        "type": "service_account",
        "project_id": "shop-mail-42",
        "client_email": "sender@shop-mail-42.iam.gserviceaccount.com",
        "private_key": PRIVATE_KEY,
        "token_uri": "https://oauth2.googleapis.com/token",
    }
)
AUTHORIZED_USER = json.dumps(
    {
        "type": "authorized_user",
        "client_id": "77-new.apps.googleusercontent.com",
        "client_secret": "client-secret-value",
        "refresh_token": "refresh-token-value",
    }
)
SECRETS = (PRIVATE_KEY.splitlines()[1], "client-secret-value", "refresh-token-value")


def upload(text: str | bytes, name: str = "key.json") -> tuple[io.BytesIO, str]:
    return io.BytesIO(text.encode() if isinstance(text, str) else text), name


def new_form(client: FlaskClient, credentials: str | bytes | None = SERVICE_ACCOUNT) -> dict:
    form = {
        "email": "news@shop.example",
        "display_name": "Shop news",
        "pool": "gmail",
        "daily_limit": "1500",
        "hourly_limit": "",
        "min_delay_ms": "200",
        "csrf_token": token(client, "/admin/accounts/new-gmail"),
    }
    return form | ({"credentials_file": upload(credentials)} if credentials else {})


def test_add_a_gmail_account_with_its_credentials_file(
    client: FlaskClient, sql: psycopg.Connection, settings
):
    assert b'enctype="multipart/form-data"' in client.get("/admin/accounts/new-gmail").data
    added = client.post("/admin/accounts/new-gmail", data=new_form(client))
    assert added.status_code == 303
    row = sql.execute("SELECT * FROM sender_accounts").fetchone()
    assert (row["email"], row["backend"], row["pool"], row["daily_limit"]) == (
        "news@shop.example",
        "gmail",
        "gmail",
        1500,
    )
    assert row["gmail_project"] == "shop-mail-42"
    box = CredentialBox(settings.secret_key)
    assert box.decrypt(row["gmail_credentials_encrypted"]) == SERVICE_ACCOUNT
    page = client.get(added.headers["Location"]).get_data(as_text=True)
    assert "Gmail settings" in page and not any(s in page for s in SECRETS)
    assert row["gmail_credentials_encrypted"] not in page
    (entry,) = sql.execute("SELECT * FROM admin_audit_log").fetchall()
    assert entry["action"] == "account.add" and entry["after"]["gmail_project"] == "shop-mail-42"
    assert not any(s in str(entry) for s in SECRETS)
    again = client.post("/admin/accounts/new-gmail", data=new_form(client))
    assert again.status_code == 400 and b"already sends as news@shop.example" in again.data


def test_a_missing_or_bad_credentials_file_is_named_and_adds_nothing(
    client: FlaskClient, sql: psycopg.Connection
):
    for credentials, says in (
        (None, b"choose the account&#39;s credentials file"),
        ("{not json", b"not JSON (line 1)"),
        ('{"type": "service_account", "client_email": "a@b"}', b"lacks private_key, token_uri"),
        (b"\xff\xfe\xfd", b"not UTF-8"),
    ):
        answer = client.post("/admin/accounts/new-gmail", data=new_form(client, credentials))
        assert answer.status_code == 400 and says in answer.data, credentials
    big = new_form(client) | {"credentials_file": upload(" " * 70_000)}
    assert b"larger than" in client.post("/admin/accounts/new-gmail", data=big).data
    assert sql.execute("SELECT count(*) AS n FROM sender_accounts").fetchone()["n"] == 0


def test_edit_a_gmail_account_credentials_write_only(
    client: FlaskClient, sql: psycopg.Connection, settings
):
    client.post("/admin/accounts/new-gmail", data=new_form(client))
    acct = sql.execute("SELECT id FROM sender_accounts").fetchone()["id"]
    path = f"/admin/accounts/{acct}/gmail"
    form = {"display_name": "Shop", "pool": "", "csrf_token": token(client)}
    assert client.post(path, data=form).status_code == 303  # no file: credentials kept
    kept = sql.execute("SELECT * FROM sender_accounts").fetchone()
    assert (kept["display_name"], kept["pool"], kept["gmail_project"]) == (
        "Shop",
        "gmail",
        "shop-mail-42",
    )
    changed = form | {"pool": "bulk", "credentials_file": upload(AUTHORIZED_USER, "user.json")}
    assert client.post(path, data=changed).status_code == 303
    row = sql.execute("SELECT * FROM sender_accounts").fetchone()
    assert (row["pool"], row["gmail_project"]) == ("bulk", "77-new.apps.googleusercontent.com")
    assert CredentialBox(settings.secret_key).decrypt(row["gmail_credentials_encrypted"]) == (
        AUTHORIZED_USER
    )
    entries = sql.execute(
        "SELECT * FROM admin_audit_log WHERE action = 'account.set_gmail' ORDER BY id"
    ).fetchall()
    assert [e["after"]["credentials"] for e in entries] == ["kept", "changed"]
    assert entries[1]["before"]["gmail_project"] == "shop-mail-42"
    assert not any(s in str(entries) for s in SECRETS)
    bad = client.post(path, data=form | {"credentials_file": upload("[]")})
    assert bad.status_code == 400 and b"service-account key or an authorized-user" in bad.data


def test_gmail_settings_need_csrf_and_a_gmail_account(client: FlaskClient, sql: psycopg.Connection):
    form = new_form(client)
    del form["csrf_token"]
    assert client.post("/admin/accounts/new-gmail", data=form).status_code == 403
    assert sql.execute("SELECT count(*) AS n FROM sender_accounts").fetchone()["n"] == 0
    smtp = sql.execute(
        "INSERT INTO sender_accounts (email, smtp_host) VALUES ('s@x.example', 'h') RETURNING id"
    ).fetchone()["id"]
    answer = client.post(
        f"/admin/accounts/{smtp}/gmail",
        data={"csrf_token": token(client), "credentials_file": upload(SERVICE_ACCOUNT)},
    )
    assert answer.status_code == 400 and b"not a Gmail account" in answer.data
    assert sql.execute("SELECT gmail_credentials_encrypted FROM sender_accounts").fetchone() == {
        "gmail_credentials_encrypted": None
    }
