"""SES notifications over SNS: verified, matched to rows by Message-ID, applied once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.mailer_env import (
    add_account,
    insert_emails,
    running_worker,
    statuses,
    wait_until,
)
from tests.support.smtp_server import ScriptedSMTPServer
from tests.support.sns import TOPIC, SnsSigner, ses_bounce, ses_complaint, ses_delivery
from tests.support.tracking_env import account, events, sent_row, tracking_app

OTHER_TOPIC = "arn:aws:sns:eu-west-1:123456789012:someone-else"


@pytest.fixture
def signer():
    return SnsSigner()


@pytest.fixture
def confirmed():
    return []


@pytest.fixture
def ses_settings(settings):
    return settings.with_overrides(ses_topic_arns=f" {TOPIC} , arn:aws:sns:us-east-1:1:x")


@pytest.fixture
def app(db_url, ses_settings, signer, confirmed):
    with tracking_app(
        db_url, ses_settings, SNS_CERT_FETCHER=signer.fetcher, SNS_CONFIRM=confirmed.append
    ) as app:
        yield app


@pytest.fixture
def row(sql):
    return sent_row(sql, account(sql), to="bob@example.org")


def post(app, message, *, header=True):
    headers = {"x-amz-sns-message-type": message.get("Type", "")} if header else {}
    headers["Content-Type"] = "text/plain; charset=UTF-8"
    return app.test_client().post("/webhooks/ses", data=json.dumps(message), headers=headers)


def suppressions(sql):
    return sql.execute("SELECT email, reason, source, expires_at FROM suppressions").fetchall()


def test_permanent_bounce_suppresses_and_records_a_bounce(app, signer, sql, row):
    response = post(app, signer.notification(ses_bounce(row["message_id"], "Bob@Example.org")))
    assert response.status_code == 200
    assert response.json == {
        "status": "processed",
        "type": "bounce",
        "matched_rows": 1,
        "suppressed": ["Bob@Example.org"],
        "paused_accounts": [],
    }
    [s] = suppressions(sql)
    assert (s["email"], s["reason"], s["source"], s["expires_at"]) == (
        "Bob@Example.org",
        "hard_bounce",
        "ses:permanent",
        None,
    )
    [event] = events(sql)
    assert (event["type"], event["queue_id"], event["account_id"]) == (
        "bounce",
        row["id"],
        row["sent_by_account_id"],
    )
    assert event["data"]["kind"] == "hard_bounce"
    assert event["data"]["diagnostic"] == "smtp; 550 5.1.1 user unknown"


def test_signature_version_2_is_accepted(app, signer, sql, row):
    message = signer.notification(ses_bounce(row["message_id"], "bob@example.org"), version="2")
    assert post(app, message).status_code == 200
    assert suppressions(sql)[0]["reason"] == "hard_bounce"


def test_transient_bounce_is_a_soft_bounce_that_expires(app, signer, sql, row, ses_settings):
    payload = ses_bounce(
        row["message_id"], "bob@example.org", bounce_type="Transient", sub_type="MailboxFull"
    )
    assert post(app, signer.notification(payload)).status_code == 200
    [s] = suppressions(sql)
    assert s["reason"] == "soft_bounce" and s["source"] == "ses:transient"
    expected = datetime.now(UTC) + timedelta(hours=ses_settings.soft_bounce_suppression_hours)
    assert abs((s["expires_at"] - expected).total_seconds()) < 60
    # A later permanent bounce makes it permanent.
    assert (
        post(app, signer.notification(ses_bounce(row["message_id"], "bob@example.org"))).status_code
        == 200
    )
    assert [(s["reason"], s["expires_at"]) for s in suppressions(sql)] == [("hard_bounce", None)]


def test_complaint_suppresses(app, signer, sql, row):
    assert (
        post(
            app, signer.notification(ses_complaint(row["message_id"], "bob@example.org"))
        ).status_code
        == 200
    )
    assert suppressions(sql)[0]["reason"] == "complaint"
    [event] = events(sql)
    assert (event["type"], event["queue_id"], event["data"]["feedback_type"]) == (
        "complaint",
        row["id"],
        "abuse",
    )


def test_delivery_is_an_event_only(app, signer, sql, row):
    response = post(app, signer.notification(ses_delivery(row["message_id"], "bob@example.org")))
    assert response.json["type"] == "delivery"
    assert suppressions(sql) == []
    [event] = events(sql)
    assert (event["type"], event["queue_id"]) == ("delivery", row["id"])


def test_unknown_message_id_still_suppresses_the_recipient(app, signer, sql):
    response = post(app, signer.notification(ses_bounce("<nobody@x>", "eve@example.org")))
    assert response.json["matched_rows"] == 0
    assert suppressions(sql)[0]["email"] == "eve@example.org"
    assert events(sql)[0]["queue_id"] is None


def test_a_replayed_message_is_applied_once(app, signer, sql, row):
    message = signer.notification(ses_bounce(row["message_id"], "bob@example.org"))
    assert post(app, message).json["status"] == "processed"
    sql.execute("DELETE FROM suppressions")
    replay = post(app, message)
    assert (replay.status_code, replay.json["status"]) == (200, "duplicate")
    assert suppressions(sql) == [] and len(events(sql)) == 1


def test_topics_not_allowed_are_rejected_before_any_fetch(app, signer, sql, row):
    message = signer.notification(
        ses_bounce(row["message_id"], "bob@example.org"), topic=OTHER_TOPIC
    )
    assert post(app, message).status_code == 403
    assert signer.fetched == [] and suppressions(sql) == [] and events(sql) == []


def test_nothing_is_accepted_without_an_allow_list(db_url, settings, signer, sql, row):
    with tracking_app(db_url, settings, SNS_CERT_FETCHER=signer.fetcher) as app:
        message = signer.notification(ses_bounce(row["message_id"], "bob@example.org"))
        assert post(app, message).status_code == 403
    assert suppressions(sql) == []


@pytest.mark.parametrize(
    "tamper", ["forged", "stale", "cert_host", "unsigned", "malformed", "header", "version"]
)
def test_untrusted_messages_change_nothing(app, signer, sql, row, tamper):
    message = signer.notification(ses_bounce(row["message_id"], "bob@example.org"))
    if tamper == "forged":
        message["Message"] = json.dumps(ses_bounce(row["message_id"], "alice@example.org"))
    elif tamper == "stale":
        message = signer.notification(
            ses_bounce(row["message_id"], "bob@example.org"),
            timestamp=datetime.now(UTC) - timedelta(days=1),
        )
    elif tamper == "cert_host":
        message["SigningCertURL"] = "https://sns.eu-west-1.amazonaws.com.attacker.example/c.pem"
        message = signer.sign(message)
    elif tamper == "unsigned":
        del message["Signature"]
    elif tamper == "malformed":
        response = app.test_client().post("/webhooks/ses", data=b"{not json")
        assert response.status_code == 400
        return
    elif tamper == "header":
        response = app.test_client().post(
            "/webhooks/ses",
            data=json.dumps(message),
            headers={"x-amz-sns-message-type": "SubscriptionConfirmation"},
        )
        assert response.status_code == 400
        return
    elif tamper == "version":
        message["SignatureVersion"] = "9"
    response = post(app, message)
    assert 400 <= response.status_code < 500, response.json
    assert suppressions(sql) == [] and events(sql) == []


def test_expired_certificate_is_rejected(db_url, ses_settings, sql, row):
    expired = SnsSigner(expired=True)
    with tracking_app(db_url, ses_settings, SNS_CERT_FETCHER=expired.fetcher) as app:
        response = post(app, expired.notification(ses_bounce(row["message_id"], "b@x.org")))
    assert response.status_code == 403 and "expired" in response.json["error"]


def test_subscription_is_confirmed_only_for_allowed_topics(app, signer, confirmed):
    allowed = signer.subscription()
    assert post(app, allowed).json == {"status": "confirmed"}
    assert confirmed == [allowed["SubscribeURL"]]
    assert post(app, signer.subscription(topic=OTHER_TOPIC)).status_code == 403
    forged = signer.subscription()
    forged["SubscribeURL"] = "https://attacker.example/confirm"
    assert post(app, forged).status_code == 403  # no longer matches its signature
    evil = signer.subscription(subscribe_url="https://attacker.example/confirm")
    assert post(app, evil).status_code == 403  # signed, but not an SNS URL
    assert confirmed == [allowed["SubscribeURL"]]


def test_notifications_that_are_not_ses_events_are_acknowledged(app, signer, sql):
    message = signer.notification({"notificationType": "AmazonSnsSubscriptionSucceeded"})
    assert post(app, message).json == {"status": "ignored"}
    assert events(sql) == []


async def test_bounce_then_the_next_queued_mail_to_that_address_is_suppressed(
    db_url, sql, settings, signer
):
    ses_settings = settings.with_overrides(ses_topic_arns=TOPIC)
    with ScriptedSMTPServer() as smtp:
        sender = add_account(sql, smtp)
        [first] = insert_emails(sql, 1, to_address="frank@example.org")
        async with running_worker(settings, db_url, sender):
            await wait_until(lambda: statuses(sql) == {"sent": 1}, message="first sent")
        sent = sql.execute("SELECT message_id FROM email_queue WHERE id = %s", (first,)).fetchone()
        received_id = smtp.wait_for(1)[0].message["Message-ID"]
        assert received_id == sent["message_id"]
        with tracking_app(db_url, ses_settings, SNS_CERT_FETCHER=signer.fetcher) as app:
            answer = post(app, signer.notification(ses_bounce(received_id, "frank@example.org")))
            assert answer.json["matched_rows"] == 1
        [second] = insert_emails(sql, 1, to_address="frank@example.org")
        async with running_worker(settings, db_url, sender):
            await wait_until(lambda: statuses(sql).get("suppressed") == 1, message="suppressed")
        assert len(smtp.received) == 1
    row = sql.execute(
        "SELECT status, last_error FROM email_queue WHERE id = %s", (second,)
    ).fetchone()
    assert row == {"status": "suppressed", "last_error": "address is suppressed (hard_bounce)"}


def test_bounces_over_the_threshold_pause_the_account(app, signer, sql):
    sender = account(sql)
    rows = [sent_row(sql, sender, to=f"r{i}@example.org") for i in range(200)]
    sql.execute(
        "INSERT INTO send_logs (queue_id, account_id, outcome, counted, code) "
        "SELECT id, %s, 'sent', true, 250 FROM email_queue",
        (sender,),
    )
    for r in rows[:10]:  # exactly 5 %: not over the threshold
        post(app, signer.notification(ses_bounce(r["message_id"], r["to_address"])))
    state = sql.execute("SELECT status FROM sender_accounts WHERE id = %s", (sender,)).fetchone()
    assert state["status"] == "active"
    answer = post(
        app, signer.notification(ses_bounce(rows[10]["message_id"], rows[10]["to_address"]))
    )
    assert answer.json["paused_accounts"] == [sender]
    state = sql.execute(
        "SELECT status, last_error FROM sender_accounts WHERE id = %s", (sender,)
    ).fetchone()
    assert state["status"] == "paused"
    assert state["last_error"].startswith("paused by the reputation guard: hard-bounce rate 5.50%")
    [event] = sql.execute("SELECT * FROM account_events").fetchall()
    assert (event["account_id"], event["type"], event["data"]["hard_bounces"]) == (
        sender,
        "reputation_pause",
        11,
    )
