"""After ``DELETE /contacts/{email}``, nothing that arrives later about the address (an
unsubscribe click from an old message, a complaint, a bounce) writes its plaintext again:
the address is blocked by its hash already. Rows stored with spaces around the address are
erased too."""

from __future__ import annotations

import uuid

from psycopg.types.json import Jsonb

from mailer.sql_queries import query
from mailer.tokens import UnsubscribeToken
from tests.support.api_env import auth, make_key
from tests.support.contacts import ADDRESS, leftovers, spread_person
from tests.support.tracking_env import codec


def test_a_late_unsubscribe_complaint_or_bounce_writes_no_plaintext(client, sql, settings):
    person = spread_person(sql)
    untrimmed = _row(sql, f"  {ADDRESS.upper()} ", "queued")
    erased = client.delete(f"/api/v1/contacts/{ADDRESS}", headers=auth(make_key(sql, "admin")))
    assert erased.status_code == 200
    status = sql.execute("SELECT status FROM email_queue WHERE id = %s", (untrimmed,)).fetchone()
    assert status["status"] == "cancelled"
    token = codec(settings).unsubscribe_token(UnsubscribeToken(person.sent_id, ADDRESS))
    page = client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert page.status_code == 200 and "You are unsubscribed" in page.get_data(as_text=True)
    complaint = {"email": f" {ADDRESS} ", "reason": "complaint", "source": "ses:complaint"}
    added = sql.execute(query("upsert_suppressions"), {"rows": Jsonb([complaint])}).fetchall()
    assert added == []
    assert leftovers(sql, (person.other_id,)) == []
    _bounce_on_the_wire(sql, person.account_id)
    assert sql.execute("SELECT email FROM suppressions").fetchall() == []


def test_other_addresses_are_still_suppressed(client, sql):
    client.delete(f"/api/v1/contacts/{ADDRESS}", headers=auth(make_key(sql, "admin")))
    bob = {"email": "bob@example.org", "reason": "complaint", "source": "ses:complaint"}
    added = sql.execute(query("upsert_suppressions"), {"rows": Jsonb([bob])}).fetchall()
    assert [a["email"] for a in added] == ["bob@example.org"]


def _row(sql, to: str, status: str, **lease: object) -> int:
    return sql.execute(
        "INSERT INTO email_queue (to_address, subject, text_body, status, locked_by) "
        "VALUES (%s, 's', 't', %s, %s) RETURNING id",
        (to, status, lease.get("locked_by")),
    ).fetchone()["id"]


def _bounce_on_the_wire(sql, account_id: int) -> None:
    """A worker records a hard bounce (550) for a new row to the erased address."""
    row = _row(sql, ADDRESS, "sending", locked_by="w")
    result = {
        "id": row, "status": "failed", "outcome": "permanent", "counted": True, "code": 550,
        "response": "550 no such user", "error": "550", "retry_seconds": None,
        "attempted_at": "2026-01-01T00:00:00+00:00", "duration_ms": 5, "refund": False,
        "suppress_reason": "hard_bounce", "to_address": ADDRESS, "attempt_id": str(uuid.uuid4()),
    }  # fmt: skip
    written = sql.execute(
        query("record_results"),
        {"results": Jsonb([result]), "account_id": account_id, "worker_id": "w"},
    ).fetchone()
    assert (written["updated"], written["logged"]) == (1, 1)
