"""The operator's CLI against a real database: migrate, accounts, status."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime

import psutil

from mailer.credentials import CredentialBox
from tests.support.tracking_env import free_port


def test_migrate_twice_is_a_no_op(mailer):
    assert mailer("db", "migrate") == "database is up to date\n"


def test_accounts_add_stores_the_password_encrypted_and_never_prints_it(mailer, sql):
    out = mailer(
        "accounts",
        "add",
        "--email",
        "news@shop.example",
        "--smtp-host",
        "smtp.shop.example",
        "--smtp-username",
        "news",
        "--smtp-password",
        "hunter2-secret",
        "--daily-limit",
        "300",
        "--hourly-limit",
        "40",
        "--min-delay-ms",
        "1500",
        "--pool",
        "marketing",
    )
    assert out == "added account 1 <news@shop.example> (active, pool marketing)\n"
    row = sql.execute("SELECT * FROM sender_accounts").fetchone()
    assert (row["daily_limit"], row["hourly_limit"], row["min_delay_ms"]) == (300, 40, 1500)
    assert "hunter2" not in row["smtp_password_encrypted"]
    box = CredentialBox("test-secret-key")
    assert box.decrypt(row["smtp_password_encrypted"]) == "hunter2-secret"
    listing = mailer("accounts", "list") + mailer("accounts", "list", "--json")
    assert "hunter2" not in listing and "encrypted" not in listing
    [account] = json.loads(mailer("accounts", "list", "--json"))
    assert account["email"] == "news@shop.example" and account["pool"] == "marketing"


def test_password_can_come_from_the_prompt(mailer, sql):
    mailer(
        "accounts",
        "add",
        "--email",
        "a@shop.example",
        "--smtp-host",
        "h",
        "--smtp-username",
        "a",
        "--prompt-password",
        input="from-prompt\n",
    )
    token = sql.execute("SELECT smtp_password_encrypted FROM sender_accounts").fetchone()
    assert CredentialBox("test-secret-key").decrypt(token["smtp_password_encrypted"]) == (
        "from-prompt"
    )


def test_pause_resume_and_set_limits(mailer, sql):
    mailer("accounts", "add", "--email", "a@shop.example", "--smtp-host", "h")
    assert mailer("accounts", "pause", "1") == "account 1 <a@shop.example> is paused\n"
    row = sql.execute("SELECT status, last_error FROM sender_accounts").fetchone()
    assert row == {"status": "paused", "last_error": "paused by operator"}
    mailer("accounts", "resume", "--account-id", "1")
    row = sql.execute("SELECT status, last_error FROM sender_accounts").fetchone()
    assert row == {"status": "active", "last_error": None}
    mailer("accounts", "set-limits", "1", "--daily-limit", "10", "--hourly-limit", "2")
    mailer("accounts", "set-limits", "1", "--min-delay-ms", "0")
    row = sql.execute(
        "SELECT daily_limit, hourly_limit, min_delay_ms FROM sender_accounts"
    ).fetchone()
    assert row == {"daily_limit": 10, "hourly_limit": 2, "min_delay_ms": 0}
    mailer("accounts", "set-limits", "1", "--no-hourly-limit")
    row = sql.execute("SELECT hourly_limit FROM sender_accounts").fetchone()
    assert row["hourly_limit"] is None


def test_an_admins_sql_resume_clears_the_reason_and_backoff_as_resume_does(mailer, sql):
    mailer("accounts", "add", "--email", "a@shop.example", "--smtp-host", "h")
    mailer("accounts", "pause", "1")
    sql.execute("UPDATE sender_accounts SET status = 'active' WHERE id = 1")
    assert "paused by operator" not in mailer("status")
    sql.execute(
        "UPDATE sender_accounts SET status = 'suspended', last_error = 'AUTH refused', "
        "backoff_count = 3, backoff_until = now() + interval '1 hour' WHERE id = 1"
    )
    sql.execute("UPDATE sender_accounts SET status = 'active' WHERE id = 1")
    row = sql.execute(
        "SELECT last_error, backoff_until, backoff_count FROM sender_accounts"
    ).fetchone()
    assert row == {"last_error": None, "backoff_until": None, "backoff_count": 0}
    sql.execute("UPDATE sender_accounts SET status = 'paused' WHERE id = 1")
    sql.execute("UPDATE sender_accounts SET status = 'active', last_error = 'kept' WHERE id = 1")
    assert sql.execute("SELECT last_error FROM sender_accounts").fetchone()["last_error"] == "kept"
    sql.execute("UPDATE sender_accounts SET last_error = 'still active' WHERE id = 1")
    sql.execute("UPDATE sender_accounts SET status = 'active' WHERE id = 1")  # no transition
    row = sql.execute("SELECT last_error FROM sender_accounts").fetchone()
    assert row["last_error"] == "still active"


def test_unknown_account_and_bad_limits_are_clear_errors(mailer):
    assert "no sender account with id 9" in mailer("accounts", "pause", "9", code=1)
    assert "ACCOUNT_ID or --account-id" in mailer("accounts", "resume", code=2)
    mailer("accounts", "add", "--email", "a@shop.example", "--smtp-host", "h")
    said = mailer("accounts", "set-limits", "1", "--daily-limit", "-1", code=1)
    assert said.strip() == "Error: --daily-limit must be 0 or more, not -1"


def test_status_counts_and_limits(mailer, sql):
    mailer(
        "accounts",
        "add",
        "--email",
        "a@shop.example",
        "--smtp-host",
        "h",
        "--daily-limit",
        "2",
        "--hourly-limit",
        "1",
    )
    sql.execute(
        "INSERT INTO email_queue (to_address, subject, html_body) "
        "VALUES ('x@example.org', 's', 'b'), ('y@example.org', 's', 'b')"
    )
    sent = sql.execute(
        "UPDATE email_queue SET status = 'sent', sent_at = now() "
        "WHERE to_address = 'x@example.org' RETURNING id"
    ).fetchone()["id"]
    sql.execute(
        "INSERT INTO send_logs (queue_id, account_id, outcome, counted, created_at) "
        "VALUES (%s, 1, 'sent', true, now() - interval '10 minutes')",
        [sent],
    )
    report = json.loads(mailer("status", "--json"))
    assert report["queue"]["queued"] == 1 and report["queue"]["sent"] == 1
    [account] = report["accounts"]
    assert (account["sent_last_hour"], account["sent_last_day"]) == (1, 1)
    assert account["frees_at"] is not None  # hourly limit of 1 reached
    text = mailer("status")
    assert "1/1" in text and "1/2" in text and "at limit, frees at" in text


def test_db_stop_stops_the_embedded_server_even_after_a_user_was_killed(tmp_path):
    home = tmp_path / "h"
    env = os.environ | {"DATABASE_URL": "", "MAILER_HOME": str(home), "MAILER_SECRET_KEY": "k"}
    cmd = [sys.executable, "-m", "mailer"]

    def mailer_cmd(*args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([*cmd, *args], env=env, timeout=60, capture_output=True, text=True)
        assert done.returncode == code, done.stderr
        return done

    assert "host=" in mailer_cmd("db", "url").stdout  # starts the server, which stays up
    pgdata = home / "pgdata"
    postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    web = subprocess.Popen(
        [*cmd, "web", "--port", str(free_port())],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60  # pgserver's machine-wide lock may be busy
        while web.pid not in json.loads((pgdata / ".handle_pids.json").read_text()):
            assert web.poll() is None, "mailer web ended"
            assert time.monotonic() < deadline, "mailer web did not open the database"
            time.sleep(0.1)
        refused = mailer_cmd("db", "stop", code=1).stderr
        assert f"in use by process(es) {web.pid}: stop them first, or use --force" in refused
        assert running(postmaster)
    finally:
        web.send_signal(signal.SIGTERM)  # ends without running atexit: its pid stays listed
        web.wait(timeout=30)
    try:
        assert web.pid in json.loads((pgdata / ".handle_pids.json").read_text())
        done = mailer_cmd("db", "stop")
        assert done.stdout == f"embedded PostgreSQL stopped (pid {postmaster})\n"
        assert str(web.pid) in done.stderr  # the stale user it dropped
        assert not running(postmaster)
        assert mailer_cmd("db", "stop").stdout == f"no embedded PostgreSQL running in {home}\n"
    finally:
        subprocess.run([*cmd, "db", "stop", "--force"], env=env, timeout=60, capture_output=True)


def running(pid: int) -> bool:
    """The process runs (a zombie waiting for its parent to reap it does not)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_db_stop_leaves_an_external_server_alone(mailer):
    assert "DATABASE_URL is set" in mailer("db", "stop", code=1)


def test_accounts_add_and_edit_smtp_settings(mailer, sql, tmp_path):
    ca = tmp_path / "relay-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    mailer(
        "accounts",
        "add",
        "--email",
        "a@shop.example",
        "--smtp-host",
        "relay.internal",
        "--ehlo-hostname",
        "mailer1.shop.example",
        "--tls-ca-file",
        str(ca),
    )
    row = sql.execute("SELECT * FROM sender_accounts").fetchone()
    assert row["ehlo_hostname"] == "mailer1.shop.example"
    assert row["smtp_tls_ca_file"] == str(ca.resolve()) and row["smtp_tls_verify"] is True

    out = mailer(
        "accounts",
        "edit",
        "1",
        "--smtp-host",
        "relay2.internal",
        "--smtp-port",
        "2525",
        "--smtp-security",
        "tls",
        "--username",
        "news",
        "--password",
        "s3cret-pw",
        "--no-tls-ca-file",
        "--tls-no-verify",
    )
    assert "relay2.internal" in out and "s3cret" not in out
    row = sql.execute("SELECT * FROM sender_accounts").fetchone()
    assert (row["smtp_host"], row["smtp_port"], row["smtp_security"]) == (
        "relay2.internal",
        2525,
        "tls",
    )
    assert row["smtp_username"] == "news" and row["smtp_tls_ca_file"] is None
    assert row["smtp_tls_verify"] is False
    assert CredentialBox("test-secret-key").decrypt(row["smtp_password_encrypted"]) == "s3cret-pw"
    assert row["ehlo_hostname"] == "mailer1.shop.example"  # not given: kept

    mailer("accounts", "edit", "1", "--no-ehlo-hostname", "--tls-verify", "--no-smtp-username")
    row = sql.execute("SELECT * FROM sender_accounts").fetchone()
    assert row["ehlo_hostname"] is None and row["smtp_tls_verify"] is True
    assert row["smtp_username"] is None and row["smtp_password_encrypted"] is None
    assert "no sender account with id 9" in mailer(
        "accounts", "edit", "9", "--smtp-port", "25", code=1
    )
    assert "does not exist" in mailer("accounts", "edit", "1", "--tls-ca-file", "/nope.pem", code=2)


def test_status_shows_the_adaptive_rates(mailer, sql):
    mailer("accounts", "add", "--email", "a@shop.example", "--smtp-host", "h")
    sql.execute(
        "INSERT INTO send_rates (account_id, destination, per_minute, reason) VALUES "
        "(1, '', 5, '450 4.7.1 too much mail'), (1, 'gmail', 2.5, '421 4.7.0 try later')"
    )
    [account] = json.loads(mailer("status", "--json"))["accounts"]
    assert account["rate_per_minute"] == 5.0
    assert account["destination_rates"] == {"gmail": 2.5}
    assert "shaped: rate 5.0/min, gmail 2.5/min" in mailer("status")


def test_accounts_add_says_what_is_wrong_and_burns_no_id(mailer, sql):
    mailer("accounts", "add", "--email", "a@shop.example", "--smtp-host", "h")
    add = ("accounts", "add", "--smtp-host", "h", "--email")
    out = mailer(*add, "A@Shop.example", code=1)
    assert "account 1 already sends as A@Shop.example (smtp)" in out
    assert "Traceback" not in out and "UniqueViolation" not in out
    assert "invalid --email 'not-an-address'" in mailer(*add, "not-an-address", code=1)
    out = mailer(*add, "b@shop.example", "--daily-limit", "-5", "--smtp-port", "70000", code=1)
    assert "--daily-limit must be 0 or more, not -5" in out
    assert "--smtp-port must be a port from 1 to 65535, not 70000" in out
    assert "--ehlo-hostname 'bad name'" in mailer(
        *add, "b@shop.example", "--ehlo-hostname", "bad name", code=1
    )
    assert mailer(*add, "b@shop.example").startswith("added account 2 ")  # no id burnt
    assert sql.execute("SELECT count(*) AS n FROM sender_accounts").fetchone()["n"] == 2


def test_accounts_remove_refuses_while_rows_are_pinned(mailer, sql):
    mailer("accounts", "add", "--email", "a@shop.example", "--smtp-host", "h")
    sql.execute(
        "INSERT INTO email_queue (to_address, subject, html_body, account_id) "
        "VALUES ('x@example.org', 's', 'b', 1)"
    )
    out = mailer("accounts", "remove", "1", code=1)
    assert out.startswith(
        "Error: cannot remove: account 1 <a@shop.example> has 1 queued or sending rows pinned"
    )
    assert len(out.strip().splitlines()) == 1
    sql.execute("UPDATE email_queue SET status = 'cancelled'")
    assert mailer("accounts", "remove", "1") == "removed account 1 <a@shop.example>\n"
    assert sql.execute("SELECT count(*) AS n FROM sender_accounts").fetchone()["n"] == 0
    assert "no sender account with id 1" in mailer("accounts", "remove", "1", code=1)


def test_accounts_edit_display_name_and_pool(mailer, sql):
    mailer("accounts", "add", "--email", "a@shop.example", "--smtp-host", "h")
    out = mailer("accounts", "edit", "1", "--display-name", "Shop", "--pool", "marketing")
    assert "display_name Shop, pool marketing" in out
    row = sql.execute("SELECT display_name, pool FROM sender_accounts").fetchone()
    assert row == {"display_name": "Shop", "pool": "marketing"}
    mailer("accounts", "edit", "1", "--prompt-password", input="typed-pw\n")  # only that
    token = sql.execute("SELECT smtp_password_encrypted FROM sender_accounts").fetchone()
    assert CredentialBox("test-secret-key").decrypt(token["smtp_password_encrypted"]) == "typed-pw"


def test_every_json_output_writes_iso_8601_times(mailer, sql):
    mailer("accounts", "add", "--email", "a@shop.example", "--smtp-host", "h")
    sql.execute("UPDATE sender_accounts SET backoff_until = now() + interval '1 hour'")
    mailer("suppress", "add", "x@example.org")
    [account] = json.loads(mailer("accounts", "list", "--json"))
    [suppression] = json.loads(mailer("suppress", "list", "--json"))
    for value in (account["backoff_until"], suppression["created_at"]):
        assert "T" in value and datetime.fromisoformat(value).utcoffset() is not None


def test_a_schema_behind_the_code_is_a_warning_not_a_failure(mailer, sql):
    sql.execute(
        "DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations)"
    )
    out = mailer("status")
    assert out.startswith("warning: database schema is behind this Mailer (1 pending migrations")
    assert "run `mailer db migrate`" in out and "queue:" in out
