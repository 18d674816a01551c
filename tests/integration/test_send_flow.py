"""End to end on real parts: rows INSERTed as another system would, a real worker, a real
SMTP server; what the sink received is parsed back with the email package."""

from __future__ import annotations

from tests.support.mailer_env import (
    add_account,
    insert_emails,
    running_worker,
    statuses,
    wait_until,
)
from tests.support.smtp_server import ScriptedSMTPServer


async def test_minimal_insert_is_sent(sql, db_url, settings):
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp, display_name="Shop")
        sql.execute(
            "INSERT INTO email_queue (to_address, subject, html_body) "
            "VALUES ('alice@example.org', 'Hi Alice', '<p>Hello</p>')"
        )
        async with running_worker(settings, db_url, account):
            await wait_until(lambda: statuses(sql) == {"sent": 1}, message="row sent")
        row = sql.execute("SELECT * FROM email_queue").fetchone()
        received = smtp.wait_for(1)
    msg = received[0].message
    assert received[0].rcpt_tos == ["alice@example.org"]
    assert msg["Subject"] == "Hi Alice"
    assert msg["To"] == "alice@example.org"
    assert msg["From"] == "Shop <sender@example.com>"
    assert msg["Message-ID"] == row["message_id"]
    assert msg.get_content_type() == "text/html"
    assert "<p>Hello</p>" in msg.get_content()
    assert row["sent_by_account_id"] == account
    assert row["attempts"] == 1 and row["sent_at"] is not None and row["last_error"] is None
    logs = sql.execute("SELECT * FROM send_logs").fetchall()
    assert [(log["outcome"], log["counted"], log["code"]) for log in logs] == [("sent", True, 250)]
    assert row["locked_by"] is None


async def test_template_variables_render_in_sandbox(sql, db_url, settings):
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp)
        insert_emails(
            sql,
            1,
            subject="Hi {{ name }}",
            html_body="<b>{{ name }}</b>",
            text_body="Dear {{ name }}",
            variables={"name": "<Bob>"},
        )
        async with running_worker(settings, db_url, account):
            await wait_until(lambda: statuses(sql) == {"sent": 1})
        msg = smtp.wait_for(1)[0].message
    assert msg["Subject"] == "Hi <Bob>"
    assert msg.get_body(("plain",)).get_content().strip() == "Dear <Bob>"
    assert "<b>&lt;Bob&gt;</b>" in msg.get_body(("html",)).get_content()
