"""Pause, resume and cancel against a real worker sending to a real SMTP server: a pause
stops sending at once (rows the worker had already claimed go back to the queue, not
out), resume finishes the campaign, cancel ends it with nothing sent twice."""

from __future__ import annotations

import asyncio

from tests.support.api_env import auth, make_key
from tests.support.mailer_env import add_account, running_worker, statuses, wait_until
from tests.support.smtp_server import ScriptedSMTPServer

INLINE = 25
TOTAL = INLINE + 5  # the rest from a CSV upload


def _start(client, key, name="launch"):
    body = {
        "name": name,
        "subject": "Hello {{ n }}",
        "text": "Hi {{ n }}",
        "recipients": [
            {"email": f"u{i}@example.org", "variables": {"n": str(i)}} for i in range(INLINE)
        ],
    }
    response = client.post("/api/v1/campaigns", json=body, headers=auth(key))
    assert response.status_code == 201
    csv = "email,n\n" + "".join(f"u{i}@example.org,{i}\n" for i in range(INLINE, TOTAL))
    uploaded = client.post(
        f"/api/v1/campaigns/{name}/recipients",
        data=csv,
        headers=auth(key, **{"Content-Type": "text/csv"}),
    )
    assert uploaded.get_json()["queued"] == TOTAL - INLINE


async def test_pause_stops_a_running_worker_and_resume_completes(client, sql, db_url, settings):
    key = make_key(sql, "send")
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp, min_delay_ms=100)
        _start(client, key)
        async with running_worker(settings, db_url, account):
            await wait_until(lambda: statuses(sql).get("sent", 0) >= 3, message="sending")
            paused = client.post("/api/v1/campaigns/launch/pause", headers=auth(key))
            assert paused.status_code == 200
            # at most the send in flight at the pause completes; the claimed rows go back
            await wait_until(lambda: "sending" not in statuses(sql), message="rows given back")
            held = statuses(sql)
            await asyncio.sleep(1.0)  # ten min_delay periods: nothing more may go out
            assert statuses(sql) == held and held["sent"] < TOTAL
            assert held == {"sent": held["sent"], "queued": TOTAL - held["sent"]}
            assert len(smtp.received) == held["sent"]
            resumed = client.post("/api/v1/campaigns/launch/resume", headers=auth(key))
            assert resumed.get_json()["state"] == "active"
            await wait_until(lambda: statuses(sql) == {"sent": TOTAL}, message="all sent")
        received = smtp.wait_for(TOTAL)
    recipients = sorted(r.rcpt_tos[0] for r in received)
    assert recipients == sorted(f"u{i}@example.org" for i in range(TOTAL))
    subjects = {r.rcpt_tos[0]: r.message["Subject"] for r in received}
    assert (subjects["u7@example.org"], subjects["u27@example.org"]) == ("Hello 7", "Hello 27")
    summary = client.get("/api/v1/campaigns/launch", headers=auth(key)).get_json()
    assert summary["progress"] == {"done": TOTAL, "total": TOTAL, "ratio": 1.0}


async def test_cancel_during_sending_cancels_the_rest(client, sql, db_url, settings):
    key = make_key(sql, "send")
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp, min_delay_ms=100)
        _start(client, key)
        async with running_worker(settings, db_url, account):
            await wait_until(lambda: statuses(sql).get("sent", 0) >= 3, message="sending")
            cancelled = client.post("/api/v1/campaigns/launch/cancel", headers=auth(key))
            assert cancelled.status_code == 200
            await wait_until(lambda: "sending" not in statuses(sql), message="rows settled")
            final = statuses(sql)
            await asyncio.sleep(0.5)
            assert statuses(sql) == final
        assert set(final) == {"sent", "cancelled"} and sum(final.values()) == TOTAL
        assert len(smtp.received) == final["sent"]
