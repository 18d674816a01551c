"""``mailer contacts export|erase``: the export as a file, the erasure confirmed or not,
and an erased address never mailed again by a real worker (aiosmtpd as the server)."""

from __future__ import annotations

import json

from mailer.config import Settings
from tests.support.contacts import ADDRESS, NAME, leftovers, spread_person
from tests.support.mailer_env import add_account, insert_emails, running_worker, wait_until
from tests.support.smtp_server import ScriptedSMTPServer


def test_export_to_a_file_and_erase_from_the_cli(mailer, sql, tmp_path):
    person = spread_person(sql)
    target = tmp_path / "ann.json"
    mailer("contacts", "export", ADDRESS, "--output", str(target))
    doc = json.loads(target.read_text(encoding="utf-8"))
    assert {e["id"] for e in doc["emails"]} == {person.sent_id, person.queued_id}
    assert doc["emails"][0]["to_name"] == NAME
    assert json.loads(mailer("contacts", "export", ADDRESS))["counts"] == doc["counts"]
    refused = mailer("contacts", "erase", ADDRESS, input="n\n", code=1)
    assert "Aborted" in refused and leftovers(sql, (person.other_id,)) != []
    out = mailer("contacts", "erase", ADDRESS, "--yes")
    assert "2 emails" in out and "1 cancelled" in out and "sha256 " in out
    assert leftovers(sql, (person.other_id,)) == []
    actions = sql.execute("SELECT action, actor FROM contact_audit ORDER BY id").fetchall()
    assert [a["action"] for a in actions] == ["export", "export", "erase"]
    assert all(a["actor"].startswith("cli:") for a in actions)


def test_a_bad_address_is_one_line_on_stderr(mailer):
    out = mailer("contacts", "erase", "nobody", "--yes", code=2)
    assert "give an email address" in out and "Traceback" not in out


async def test_an_erased_address_is_never_sent_to_again(
    mailer, sql, db_url: str, settings: Settings
) -> None:
    mailer("contacts", "erase", ADDRESS, "--yes")
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp)
        erased = insert_emails(sql, 2, to_address=lambda i: [ADDRESS, ADDRESS.lower()][i])
        (kept,) = insert_emails(sql, 1, to_address="bob@example.org", account_id=account)
        async with running_worker(settings, db_url, account):
            await wait_until(
                lambda: (
                    _statuses(sql)
                    == {erased[0]: "suppressed", erased[1]: "suppressed", kept: "sent"}
                ),
                message="both erased rows suppressed, bob's sent",
            )
        assert [m.rcpt_tos for m in smtp.received] == [["bob@example.org"]]
    rows = sql.execute("SELECT last_error FROM email_queue WHERE id = ANY(%s)", (erased,))
    assert {r["last_error"] for r in rows} == {"address is suppressed (erased)"}


def _statuses(sql) -> dict[int, str]:
    return {r["id"]: r["status"] for r in sql.execute("SELECT id, status FROM email_queue")}
