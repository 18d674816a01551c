"""``/contacts/{email}``: the export holds everything about an address, the erasure leaves
none of it in any table (only a hash that keeps the address suppressed), both audited;
admin keys only."""

from __future__ import annotations

import pytest

from mailer.sql_queries import query
from tests.support.api_env import auth, make_key
from tests.support.contacts import (
    ADDRESS,
    AGENT,
    BODY,
    IP,
    NAME,
    SECRETS,
    leftovers,
    spread_person,
)


@pytest.fixture
def admin(sql):
    return make_key(sql, "admin")


def test_export_holds_every_row_attempt_event_and_report(client, sql, admin):
    person = spread_person(sql)
    for path in (f"/api/v1/contacts/{ADDRESS}", f"/api/v1/contacts/{ADDRESS.upper()}/export"):
        answer = client.get(path, headers=auth(admin))
        assert answer.status_code == 200, answer.get_data(as_text=True)
        doc = answer.get_json()
        rows = {e["id"]: e for e in doc["emails"]}
        assert set(rows) == {person.sent_id, person.queued_id}  # not bob's
        sent = rows[person.sent_id]
        assert (sent["to_name"], sent["html_body"], sent["variables"]) == (
            NAME,
            BODY,
            {"name": NAME},
        )
        assert [a["code"] for a in sent["attempts"]] == [250]
        assert [e["type"] for e in sent["events"]] == ["open", "bounce"]
        assert sent["events"][0]["data"] == {"ip": IP, "user_agent": AGENT}
        assert [s["reason"] for s in doc["suppressions"]] == ["complaint"]
        assert "Final-Recipient: " + ADDRESS in doc["bounce_reports"][0]["raw"]
        assert {d["event_type"] for d in doc["webhook_deliveries"]} == {"sent", "opened", "bounced"}
        assert doc["counts"]["emails"] == 2 and doc["erased_at"] is None
    download = client.get(f"/api/v1/contacts/{ADDRESS}/export", headers=auth(admin))
    assert "attachment" in download.headers["Content-Disposition"]
    audit = sql.execute("SELECT * FROM contact_audit ORDER BY id").fetchall()
    assert [a["action"] for a in audit] == ["export"] * 3
    assert audit[0]["actor"].startswith("api-key:") and ADDRESS.lower() not in str(audit)
    assert audit[0]["counts"]["attempts"] == 1


def test_erase_leaves_no_personal_data_in_any_table(client, sql, admin):
    person = spread_person(sql)
    seen = {found.split(": ", 1)[1] for found in leftovers(sql, (person.other_id,))}
    assert seen == set(SECRETS)  # the check sees every piece before the erasure
    answer = client.delete(f"/api/v1/contacts/{ADDRESS}", headers=auth(admin))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    counts = answer.get_json()["counts"]
    assert (counts["emails"], counts["cancelled"], counts["bounce_reports"]) == (2, 1, 1)
    assert leftovers(sql, (person.other_id,)) == []
    rows = {r["id"]: r for r in sql.execute("SELECT * FROM email_queue")}
    assert rows[person.queued_id]["status"] == "cancelled"
    cancelled = sql.execute(
        "SELECT payload FROM webhook_deliveries WHERE event_type = 'cancelled'"
    ).fetchall()  # the cancellation's own event, scrubbed like the others
    assert [d["payload"]["data"]["to"] for d in cancelled] == ["[erased]"]
    assert rows[person.sent_id]["status"] == "sent"  # history (and limits) kept
    assert rows[person.other_id]["to_name"] == NAME  # someone else's row untouched
    assert sql.execute("SELECT count(*) AS n FROM send_logs").fetchone()["n"] == 1
    erased = sql.execute("SELECT * FROM erased_contacts").fetchall()
    hashed = answer.get_json()["email_hash"]
    assert hashed in [e["email_hash"] for e in erased] and len(hashed) == 64
    audit = sql.execute("SELECT * FROM contact_audit").fetchone()
    assert (audit["action"], audit["email_hash"]) == ("erase", hashed)
    after = client.get(f"/api/v1/contacts/{ADDRESS}", headers=auth(admin)).get_json()
    assert after["emails"] == [] and after["erased_at"] is not None


def test_an_erased_address_stays_suppressed_for_the_claim(client, sql, admin):
    client.delete(f"/api/v1/contacts/{ADDRESS}", headers=auth(admin))
    sql.execute("INSERT INTO sender_accounts (email) VALUES ('s@shop.example')")
    (row,) = sql.execute(
        "INSERT INTO email_queue (to_address, subject, text_body) VALUES (%s, 's', 't') "
        "RETURNING id",
        (f"  {ADDRESS.upper()} ",),
    ).fetchall()
    claimed = sql.execute(
        query("claim_batch"),
        {
            "account_id": 1,
            "pool": "default",
            "limit": 5,
            "worker_id": "w",
            "lease_seconds": 30,
            "domain": "shop.example",
        },
    ).fetchall()
    assert [(c["id"], c["suppression_reason"]) for c in claimed] == [(row["id"], "erased")]


def test_contacts_need_an_unrestricted_admin_key(client, sql):
    for key in (make_key(sql, "send"), make_key(sql, "read"), make_key(sql, "admin", "eu")):
        for method in ("get", "delete"):
            answer = getattr(client, method)(f"/api/v1/contacts/{ADDRESS}", headers=auth(key))
            assert answer.status_code == 403
    assert sql.execute("SELECT count(*) AS n FROM contact_audit").fetchone()["n"] == 0


def test_a_non_address_is_a_validation_problem(client, sql, admin):
    answer = client.delete("/api/v1/contacts/no-at-sign", headers=auth(admin))
    assert answer.status_code == 422 and answer.get_json()["errors"][0]["pointer"] == "/email"
