"""Idempotency-Key: the same request replays the first response without queueing again;
a different request with the same key is 409; keys are per API key and last 24 hours."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

from mailer.api_keys import ApiKeyManager
from mailer.idempotency import Claim, ClaimResult, IdempotencyKeys, request_hash
from mailer.rate_limits import count_request
from tests.support.api_env import auth, email, make_key
from tests.support.tracking_env import tracking_app


def _count(sql):
    return sql.execute("SELECT count(*) AS n FROM email_queue").fetchone()["n"]


def test_same_key_same_body_replays_the_first_response(client, sql):
    key = make_key(sql, "send")
    headers = auth(key, **{"Idempotency-Key": "order-42"})
    first = client.post("/api/v1/emails", json=email(), headers=headers)
    again = client.post("/api/v1/emails", json=email(), headers=headers)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert _count(sql) == 1


def test_same_key_different_body_is_409(client, sql):
    key = make_key(sql, "send")
    headers = auth(key, **{"Idempotency-Key": "k1"})
    client.post("/api/v1/emails", json=email(), headers=headers)
    other = client.post("/api/v1/emails", json=email(subject="Other"), headers=headers)
    assert other.status_code == 409
    assert other.get_json()["type"] == "/api/v1/problems/idempotency-key-reused"
    assert _count(sql) == 1


def test_a_key_still_running_is_409(client, sql):
    key = make_key(sql, "send")
    key_id = sql.execute("SELECT id FROM api_keys").fetchone()["id"]
    sql.execute(
        "INSERT INTO api_idempotency (api_key_id, idem_key, request_hash) VALUES (%s, 'k', 'h')",
        (key_id,),
    )
    response = client.post(
        "/api/v1/emails", json=email(), headers=auth(key, **{"Idempotency-Key": "k"})
    )
    assert response.status_code == 409
    assert response.get_json()["type"] in (
        "/api/v1/problems/idempotency-key-in-use",
        "/api/v1/problems/idempotency-key-reused",
    )


def test_validation_errors_replay_too_and_keys_are_per_api_key(client, sql):
    one, two = make_key(sql, "send"), make_key(sql, "send")
    bad = email(to="nope")
    first = client.post("/api/v1/emails", json=bad, headers=auth(one, **{"Idempotency-Key": "x"}))
    again = client.post("/api/v1/emails", json=bad, headers=auth(one, **{"Idempotency-Key": "x"}))
    assert first.status_code == again.status_code == 422
    assert again.mimetype == "application/problem+json"
    other = client.post(
        "/api/v1/emails", json=email(), headers=auth(two, **{"Idempotency-Key": "x"})
    )
    assert other.status_code == 202


def test_a_key_older_than_24_hours_is_fresh_again(client, sql):
    key = make_key(sql, "send")
    headers = auth(key, **{"Idempotency-Key": "old"})
    client.post("/api/v1/emails", json=email(), headers=headers)
    sql.execute("UPDATE api_idempotency SET created_at = now() - interval '25 hours'")
    response = client.post("/api/v1/emails", json=email(), headers=headers)
    assert response.status_code == 202 and "Idempotent-Replayed" not in response.headers
    assert _count(sql) == 2


def test_a_malformed_idempotency_key_is_400(client, sql):
    headers = auth(make_key(sql, "send"), **{"Idempotency-Key": "x" * 300})
    response = client.post("/api/v1/emails", json=email(), headers=headers)
    assert response.status_code == 400
    assert _count(sql) == 0


def test_expired_keys_and_old_windows_are_pruned_by_traffic(client, sql):
    key = make_key(sql, "send")
    client.post("/api/v1/emails", json=email(), headers=auth(key, **{"Idempotency-Key": "a"}))
    sql.execute("UPDATE api_idempotency SET created_at = now() - interval '25 hours'")
    sql.execute("UPDATE api_rate_windows SET window_start = now() - interval '2 hours'")
    client.get("/api/v1/emails", headers=auth(key))  # the first request of a new window
    assert sql.execute("SELECT count(*) AS n FROM api_idempotency").fetchone()["n"] == 0
    windows = sql.execute("SELECT count(*) AS n FROM api_rate_windows").fetchone()["n"]
    assert windows == 1


def _crashed_claim(sql, key_id: int, body: bytes, seconds_ago: float) -> None:
    """The row a request leaves when its process dies after claiming its key."""
    sql.execute(
        "INSERT INTO api_idempotency (api_key_id, idem_key, request_hash, created_at) "
        "VALUES (%s, 'crash', %s, now() - make_interval(secs => %s))",
        (key_id, request_hash("POST", "/api/v1/emails", body), seconds_ago),
    )


def test_a_claim_left_by_a_crashed_request_is_taken_over_after_the_stale_time(client, sql):
    key = make_key(sql, "send")
    key_id = sql.execute("SELECT id FROM api_keys").fetchone()["id"]
    body = json.dumps(email()).encode()
    headers = auth(key, **{"Idempotency-Key": "crash", "Content-Type": "application/json"})
    _crashed_claim(sql, key_id, body, seconds_ago=10)  # may still be running: 409
    busy = client.post("/api/v1/emails", data=body, headers=headers)
    assert busy.status_code == 409 and busy.headers["Retry-After"] == "1"
    sql.execute("UPDATE api_idempotency SET created_at = now() - interval '61 seconds'")
    other = client.post("/api/v1/emails", data=json.dumps(email(subject="x")), headers=headers)
    assert other.status_code == 409  # a different request never takes a key over
    assert other.get_json()["type"] == "/api/v1/problems/idempotency-key-reused"
    taken = client.post("/api/v1/emails", data=body, headers=headers)
    assert taken.status_code == 202 and _count(sql) == 1
    replay = client.post("/api/v1/emails", data=body, headers=headers)
    assert replay.get_json() == taken.get_json() and _count(sql) == 1


def test_a_request_that_lost_its_claim_cannot_complete_or_release_it(sql):
    key_id = ApiKeyManager(sql).create("k", "send", ()).key.id
    keys = IdempotencyKeys(sql, key_id, stale_seconds=60)
    assert keys.claim("slow", "h").claim is Claim.NEW
    old = sql.execute(  # the slow request's claim, as it looks 2 minutes later
        "UPDATE api_idempotency SET created_at = created_at - interval '2 minutes' "
        "RETURNING created_at"
    ).fetchone()["created_at"]
    retry = keys.claim("slow", "h")
    assert retry.claim is Claim.NEW and retry.claimed_at != old
    keys.release("slow", old)  # the slow one failing must not free the retry's claim
    assert keys.complete("slow", old, 202, '{"old": true}') is False
    assert keys.complete("slow", retry.claimed_at, 202, '{"new": true}') is True
    assert keys.claim("slow", "h") == ClaimResult(Claim.REPLAY, 202, '{"new": true}')


def test_the_unflushed_bookkeeping_commits_leave_later_commits_synchronous(client, sql):
    """The rate-limit count and the key claim skip the WAL flush for their own commit
    only: the connection's next transaction (the rows) is flushed as usual."""
    key = make_key(sql, "send")
    key_id = sql.execute("SELECT id FROM api_keys").fetchone()["id"]
    assert IdempotencyKeys(sql, key_id).claim("k", "h").claim is Claim.NEW
    count_request(sql, key_id, 10)
    assert sql.execute("SHOW synchronous_commit").fetchone()["synchronous_commit"] == "on"
    response = client.post(
        "/api/v1/emails", json=email(), headers=auth(key, **{"Idempotency-Key": "n"})
    )
    assert response.status_code == 202


def test_a_request_whose_claim_was_taken_over_rolls_back(db_url, settings, sql):
    """With a stale time of 0 every running request's claim can be taken over by its
    twin: however the six identical batches below interleave, the batch is queued once
    (a request that lost its claim rolls back and answers 409)."""
    key = make_key(sql, "send")
    body = json.dumps({"emails": [email(to=f"u{i}@example.org") for i in range(300)]})
    headers = auth(key, **{"Idempotency-Key": "twin", "Content-Type": "application/json"})
    eager = settings.with_overrides(api_idempotency_stale_seconds=0.0)
    with tracking_app(db_url, eager) as app:
        start = threading.Barrier(6)

        def post() -> int:
            start.wait()
            return (
                app.test_client()
                .post("/api/v1/emails/batch", data=body, headers=headers)
                .status_code
            )

        with ThreadPoolExecutor(6) as pool:
            codes = list(pool.map(lambda _: post(), range(6)))
    assert set(codes) <= {202, 409} and 202 in codes, codes
    assert _count(sql) == 300
