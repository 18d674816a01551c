"""``/emails``: queueing one and many, reading back, listing by keyset, cancel and retry;
and bad input refused with the worker's own messages, never a 500."""

from __future__ import annotations

import io
import json

import pytest

from mailer.addresses import validated_address
from mailer.errors import InvalidMessageError
from mailer.render import checked_header, clean_header
from tests.support.api_env import auth, email, make_key


@pytest.fixture
def key(sql):
    return make_key(sql, "admin")


def _worker_message(check, *args):
    with pytest.raises(InvalidMessageError) as caught:
        check(*args)
    return str(caught.value)


def test_post_queues_a_row_with_every_field(client, sql, key):
    template = sql.execute(
        "INSERT INTO templates (name, subject, text_body) VALUES ('welcome', 'Hi {{ n }}', 'x') "
        "RETURNING id"
    ).fetchone()["id"]
    body = {
        "to": {"email": "bob@example.org", "name": "Bob"},
        "template": "welcome",
        "variables": {"n": "Bob"},
        "headers": {"X-Order": "42"},
        "campaign": "spring",
        "metadata": {"order": 42},
        "priority": 5,
        "scheduled_at": "2030-01-01T00:00:00+00:00",
        "track_opens": False,
        "track_clicks": True,
        "transactional": True,
    }
    response = client.post("/api/v1/emails", json=body, headers=auth(key))
    assert response.status_code == 202
    out = response.get_json()
    assert out["status"] == "queued" and "message_id" in out
    row = sql.execute("SELECT * FROM email_queue WHERE id = %s", (out["id"],)).fetchone()
    assert (row["to_address"], row["to_name"], row["template_id"]) == (
        "bob@example.org",
        "Bob",
        template,
    )
    assert row["variables"] == {"n": "Bob"} and row["headers"] == {"X-Order": "42"}
    assert (row["campaign"], row["priority"], row["transactional"]) == ("spring", 5, True)
    assert (row["track_opens"], row["track_clicks"]) == (False, True)
    assert row["scheduled_at"].year == 2030 and row["metadata"] == {"order": 42}


@pytest.mark.parametrize(
    ("body", "pointer", "expected"),
    [
        (
            email(to="not an address"),
            "/to",
            lambda: _worker_message(validated_address, "not an address"),
        ),
        (
            email(subject="Hi\r\nBcc: x@y.org"),
            "/subject",
            lambda: _worker_message(clean_header, "Hi\r\nBcc: x@y.org"),
        ),
        (
            email(headers={"From": "x@y.org"}),
            "/headers/From",
            lambda: _worker_message(checked_header, "From", "x@y.org"),
        ),
        (
            email(headers={"X-A": "1\n2"}),
            "/headers/X-A",
            lambda: _worker_message(checked_header, "X-A", "1\n2"),
        ),
    ],
)
def test_bad_input_gets_the_workers_message(client, key, body, pointer, expected):
    response = client.post("/api/v1/emails", json=body, headers=auth(key))
    assert response.status_code == 422
    problem = response.get_json()
    assert problem["type"] == "/api/v1/problems/validation-failed"
    assert problem["errors"] == [{"pointer": pointer, "detail": expected()}]


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"subject": "s", "html": "h"}, "/to"),
        ({"to": "a@b.org", "html": "h"}, "/subject"),
        ({"to": "a@b.org", "subject": "s"}, "/html"),
        (email(template="missing"), "/template"),
        (email(account=999), "/account"),
        (email(priority="high"), "/priority"),
        (email(scheduled_at="tomorrow"), "/scheduled_at"),
        (email(scheduled_at="2030-01-01T00:00:00"), "/scheduled_at"),
        (email(metadata={"a": "\u0000"}), "/metadata/a"),
        (email(html="a\u0000b"), "/html"),
        (email(bogus=1), "/bogus"),
        (email(account=2**70), "/account"),
        ([1, 2], "/"),
        (email(template="a\u0000b"), "/template"),
        (email(variables={"k": ["x", "\u0000"]}), "/variables/k/1"),
        (email(account=2**63), "/account"),
    ],
)
def test_validation_errors_point_at_the_field(client, key, body, pointer):
    response = client.post("/api/v1/emails", json=body, headers=auth(key))
    assert response.status_code == 422, response.get_json()
    assert pointer in [e["pointer"] for e in response.get_json()["errors"]]


@pytest.mark.parametrize(
    ("data", "content_type", "status", "slug"),
    [
        ("{not json", "application/json", 400, "malformed-request"),
        ('{"to": "a@b.org", "subject": "\\ud800"}', "application/json", 400, "malformed-request"),
        (
            '{"to": "a@b.org", "subject": "s", "text": "t", "metadata": {"x": NaN}}',
            "application/json",
            400,
            "malformed-request",
        ),
        ("[" * 100000 + "]" * 100000, "application/json", 400, "malformed-request"),
        ("to=a@b.org", "application/x-www-form-urlencoded", 415, "unsupported-media-type"),
        ("x" * (3 * 1024 * 1024), "application/json", 413, "payload-too-large"),
    ],
)
def test_malformed_bodies(client, key, data, content_type, status, slug):
    response = client.post(
        "/api/v1/emails", data=data, headers=auth(key, **{"Content-Type": content_type})
    )
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["type"] == f"/api/v1/problems/{slug}"


def test_a_body_without_a_length_over_the_cap_is_413_not_cut_short(client, sql, key):
    """A chunked body (no Content-Length; the server terminates the stream) that runs past
    the 2 MiB cap: a valid email, then padding, then garbage past the cap. Werkzeug alone
    read it up to the cap and queued the email."""
    body = json.dumps(email()).encode() + b" " * (3 * 1024 * 1024) + b"GARBAGE"
    response = client.post(
        "/api/v1/emails",
        input_stream=io.BytesIO(body),
        headers=auth(key, **{"Content-Type": "application/json", "Transfer-Encoding": "chunked"}),
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413
    assert response.get_json()["type"] == "/api/v1/problems/payload-too-large"
    assert sql.execute("SELECT count(*) AS n FROM email_queue").fetchone()["n"] == 0
    small = client.post(
        "/api/v1/emails",
        input_stream=io.BytesIO(json.dumps(email()).encode()),
        headers=auth(key, **{"Content-Type": "application/json", "Transfer-Encoding": "chunked"}),
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert small.status_code == 202


def test_batch_strict_queues_nothing_when_one_item_is_bad(client, sql, key):
    body = {"emails": [email(), email(to="bad"), email()]}
    response = client.post("/api/v1/emails/batch", json=body, headers=auth(key))
    assert response.status_code == 422
    assert [e["pointer"] for e in response.get_json()["errors"]] == ["/emails/1/to"]
    assert sql.execute("SELECT count(*) AS n FROM email_queue").fetchone()["n"] == 0


@pytest.mark.parametrize("by", ["field", "header"])
def test_batch_permissive_queues_the_good_ones_in_request_order(client, sql, key, by):
    items = [email(to=f"r{i}@example.org") for i in range(6)]
    items[2], items[4] = email(to="bad"), email(headers={"Subject": "x"})
    body = {"emails": items} | ({"mode": "permissive"} if by == "field" else {})
    headers = auth(key, **({"X-Batch-Mode": "permissive"} if by == "header" else {}))
    response = client.post("/api/v1/emails/batch", json=body, headers=headers)
    assert response.status_code == 202
    results = response.get_json()["results"]
    assert [r["index"] for r in results] == list(range(6))
    assert ["error" in r for r in results] == [False, False, True, False, True, False]
    for r in results:
        if "id" in r:
            row = sql.execute("SELECT to_address FROM email_queue WHERE id = %s", (r["id"],))
            assert row.fetchone()["to_address"] == f"r{r['index']}@example.org"


def test_batch_of_500_is_one_insert_statement(client, sql, key):
    body = {"emails": [email(to=f"r{i}@example.org") for i in range(500)]}
    response = client.post("/api/v1/emails/batch", json=body, headers=auth(key))
    assert response.status_code == 202
    ids = [r["id"] for r in response.get_json()["results"]]
    assert ids == sorted(ids) and len(set(ids)) == 500
    rows = sql.execute("SELECT id, to_address FROM email_queue ORDER BY id").fetchall()
    assert [r["to_address"] for r in rows] == [f"r{i}@example.org" for i in range(500)]
    assert len({r["xmin"] for r in sql.execute("SELECT xmin::text FROM email_queue")}) == 1


def test_batch_limits(client, key):
    too_many = {"emails": [email()] * 501}
    response = client.post("/api/v1/emails/batch", json=too_many, headers=auth(key))
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["pointer"] == "/emails"
    huge = json.dumps({"emails": [email(html="x" * 1024 * 1024)] * 17})
    response = client.post(
        "/api/v1/emails/batch",
        data=huge,
        headers=auth(key, **{"Content-Type": "application/json"}),
    )
    assert response.status_code == 413


def test_get_shows_attempts_and_events(client, sql, key):
    queued = client.post("/api/v1/emails", json=email(), headers=auth(key)).get_json()["id"]
    sql.execute(
        "INSERT INTO send_logs (queue_id, outcome, counted, code, response) "
        "VALUES (%s, 'transient', true, 451, 'try later')",
        (queued,),
    )
    sql.execute(
        "INSERT INTO email_events (queue_id, type, data) VALUES (%s, 'open', '{}')", (queued,)
    )
    out = client.get(f"/api/v1/emails/{queued}", headers=auth(key)).get_json()
    assert [(a["outcome"], a["code"], a["response"]) for a in out["attempts"]] == [
        ("transient", 451, "try later")
    ]
    assert [e["type"] for e in out["events"]] == ["open"]
    assert client.get("/api/v1/emails/999999", headers=auth(key)).status_code == 404
    assert client.get(f"/api/v1/emails/{2**64}", headers=auth(key)).status_code == 404


def test_list_filters_and_keyset_pages(client, sql, key):
    for i in range(5):
        client.post(
            "/api/v1/emails",
            json=email(campaign="c" if i % 2 else None, to=f"p{i}@example.org"),
            headers=auth(key),
        )
    seen, cursor = [], None
    while True:
        query = "/api/v1/emails?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(query, headers=auth(key)).get_json()
        seen += [r["id"] for r in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen, reverse=True) and len(seen) == 5
    campaign = client.get("/api/v1/emails?campaign=c", headers=auth(key)).get_json()["data"]
    assert len(campaign) == 2
    to = client.get("/api/v1/emails?to=P3@example.org", headers=auth(key)).get_json()["data"]
    assert [r["to_address"] for r in to] == ["p3@example.org"]
    for bad in ("status=lost", "since=yesterday", "cursor=-1", "limit=0"):
        assert client.get(f"/api/v1/emails?{bad}", headers=auth(key)).status_code == 422


def test_cancel_only_from_queued_and_retry_only_from_failed(client, sql, key):
    queued = client.post("/api/v1/emails", json=email(), headers=auth(key)).get_json()["id"]
    assert client.post(f"/api/v1/emails/{queued}/retry", headers=auth(key)).status_code == 409
    cancelled = client.post(f"/api/v1/emails/{queued}/cancel", headers=auth(key))
    assert cancelled.get_json()["status"] == "cancelled"
    assert client.post(f"/api/v1/emails/{queued}/cancel", headers=auth(key)).status_code == 409
    sql.execute(
        "UPDATE email_queue SET status = 'failed', attempts = 5, last_error = 'boom' WHERE id = %s",
        (queued,),
    )
    retried = client.post(f"/api/v1/emails/{queued}/retry", headers=auth(key))
    assert retried.status_code == 200 and retried.get_json()["status"] == "queued"
    row = sql.execute("SELECT * FROM email_queue WHERE id = %s", (queued,)).fetchone()
    assert row["attempts"] == 0 and "boom" in row["last_error"] and "retried" in row["last_error"]
    assert client.post("/api/v1/emails/424242/cancel", headers=auth(key)).status_code == 404


def test_unknown_api_path_and_method_are_problems(client, key):
    missing = client.get("/api/v1/nothing", headers=auth(key))
    assert missing.status_code == 404 and missing.mimetype == "application/problem+json"
    wrong = client.delete("/api/v1/emails", headers=auth(key))
    assert wrong.status_code == 405 and wrong.mimetype == "application/problem+json"


@pytest.mark.parametrize(
    "path", ["/api/v1/emails?campaign=%00", "/api/v1/templates/a%00b", "/api/v1/emails?to=a%00"]
)
def test_nul_in_path_or_query_is_400_not_500(client, key, path):
    response = client.get(path, headers=auth(key))
    assert response.status_code == 400
    assert response.get_json()["type"] == "/api/v1/problems/malformed-request"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (json.dumps(email(subject="a\u0000b")).encode("utf-16"), 422),  # NUL, UTF-16 body
        (json.dumps(email(subject="x")).encode().replace(b'"x"', b'"\xed\xa0\x80"'), 400),
    ],
)
def test_nul_and_surrogates_are_found_without_an_escape_too(client, sql, key, data, status):
    """The walks for NUL and unpaired surrogates are skipped only for bodies that cannot
    hold one: a UTF-16 body and raw surrogate bytes still get them."""
    response = client.post(
        "/api/v1/emails", data=data, headers=auth(key, **{"Content-Type": "application/json"})
    )
    assert response.status_code == status, response.get_json()
    assert sql.execute("SELECT count(*) AS n FROM email_queue").fetchone()["n"] == 0


def test_templates_that_would_fail_the_row_are_refused_at_the_door(client, sql, key):
    """The worker's own message, at the field at fault, instead of a 202 and a row that
    fails later; a body without variables is not a template and goes as written."""
    sql.execute("INSERT INTO templates (name, subject, text_body) VALUES ('t', 'Hi {{ n }}', 'x')")
    cases = [
        (email(subject="{{ x ", variables={"a": 1}), "/subject", "template error in subject"),
        (email(html="<p>{{ who }}</p>", variables={}), "/html", "'who' is undefined"),
        (email(template="t", subject=None, html=None), "/variables", "'n' is undefined"),
    ]
    for body, pointer, says in cases:
        response = client.post("/api/v1/emails", json=body, headers=auth(key))
        assert response.status_code == 422, (body, response.get_json())
        [error] = response.get_json()["errors"]
        assert error["pointer"] == pointer and says in error["detail"], error
    batch = {"emails": [email(), email(subject="{% if %}", variables={})]}
    strict = client.post("/api/v1/emails/batch", json=batch, headers=auth(key))
    assert strict.status_code == 422
    assert [e["pointer"] for e in strict.get_json()["errors"]] == ["/emails/1/subject"]
    assert sql.execute("SELECT count(*) AS n FROM email_queue").fetchone()["n"] == 0
    plain = email(subject="{{ literally", html="<p>{% not a tag</p>")
    fine = [
        plain,
        email(template="t", variables={"n": "Bo"}),
        email(text="{{ unsubscribe_url }}", variables={}),
    ]
    for body in fine:
        response = client.post("/api/v1/emails", json=body, headers=auth(key))
        assert response.status_code == 202, (body, response.get_json())


def test_a_template_that_raises_and_headers_named_twice_are_refused_not_500(client, sql, key):
    for body, pointer, says in [
        (email(subject="{{ 1/0 }}", variables={}), "/subject", "cannot render: ZeroDivisionError"),
        (email(headers={"Reply-To": "a@x.org", "reply-to": "b@x.org"}), "/headers/reply-to",
         "is given twice"),
    ]:  # fmt: skip
        response = client.post("/api/v1/emails", json=body, headers=auth(key))
        assert response.status_code == 422, response.get_json()
        [error] = response.get_json()["errors"]
        assert error["pointer"] == pointer and says in error["detail"], error
    assert sql.execute("SELECT count(*) AS n FROM email_queue").fetchone()["n"] == 0
