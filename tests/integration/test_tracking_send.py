"""What a real worker sends: bulk mail tracked and unsubscribable, transactional mail
untouched, per-campaign switches honoured."""

from __future__ import annotations

import re

from tests.support.mailer_env import (
    add_account,
    insert_emails,
    running_worker,
    statuses,
    wait_until,
)
from tests.support.smtp_server import ScriptedSMTPServer
from tests.support.tracking_env import codec

HTML = '<p><a href="https://shop.example/x?a=1&amp;b=2">X</a></p>'


async def test_bulk_transactional_and_campaign_switches(sql, db_url, settings):
    sql.execute("INSERT INTO campaign_settings (campaign, track_opens) VALUES ('quiet', false)")
    sql.execute(
        "INSERT INTO templates (name, subject, html_body) VALUES ('welcome', "
        "'Welcome {{ name }}', '<p>Hi {{ name }} <a href=\"{{ unsubscribe_url }}\">"
        "unsubscribe</a></p>')"
    )
    with ScriptedSMTPServer() as smtp:
        sender = add_account(sql, smtp)
        insert_emails(sql, 1, to_address="bulk@example.org", html_body=HTML)
        insert_emails(sql, 1, to_address="tx@example.org", html_body=HTML, transactional=True)
        insert_emails(sql, 1, to_address="quiet@example.org", html_body=HTML, campaign="quiet")
        sql.execute(
            "INSERT INTO email_queue (to_address, template_id, variables) "
            "SELECT 'tpl@example.org', id, '{\"name\": \"Ann\"}' FROM templates"
        )
        async with running_worker(settings, db_url, sender):
            await wait_until(lambda: statuses(sql) == {"sent": 4}, message="all sent")
        received = {m.rcpt_tos[0]: m.message for m in smtp.wait_for(4)}
    tokens = codec(settings)

    bulk = received["bulk@example.org"]
    html = bulk.get_body(("html",)).get_content()
    [click] = re.findall(r'href="http://127\.0\.0\.1:8025/track/click/([\w-]+)"', html)
    assert tokens.read_click(click).url == "https://shop.example/x?a=1&b=2"
    assert "/track/open/" in html
    assert bulk["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    tx = received["tx@example.org"]
    assert tx.get_body(("html",)).get_content().strip() == HTML
    assert tx["List-Unsubscribe"] is None and tx["List-Unsubscribe-Post"] is None

    quiet = received["quiet@example.org"].get_body(("html",)).get_content()
    assert "/track/click/" in quiet and "/track/open/" not in quiet

    tpl = received["tpl@example.org"]
    assert tpl["Subject"] == "Welcome Ann"
    [unsub] = re.findall(
        r'<a href="http://127\.0\.0\.1:8025/unsubscribe/([\w-]+)">',
        tpl.get_body(("html",)).get_content(),
    )
    assert tokens.read_unsubscribe(unsub).email == "tpl@example.org"
