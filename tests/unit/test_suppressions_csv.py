"""The suppression CSV format."""

from __future__ import annotations

from datetime import UTC, datetime

from mailer.suppressions import SuppressionEntry, parse_csv, to_csv


def test_header_names_columns_in_any_order():
    text = (
        "Email,Source,Reason,expires_at\n"
        "a@example.org,crm,unsubscribe,\n"
        " B@Example.org ,,,2030-01-01T00:00:00+00:00\n"
    )
    entries, errors = parse_csv(text, reason="manual", source="import")
    assert errors == []
    assert entries == [
        SuppressionEntry("a@example.org", "unsubscribe", "crm", None),
        SuppressionEntry("B@Example.org", "manual", "import", datetime(2030, 1, 1, tzinfo=UTC)),
    ]


def test_no_header_means_email_reason_source_expires_at():
    entries, errors = parse_csv("a@example.org\nb@example.org,complaint\n\n", source="x")
    assert errors == []
    assert [(e.email, e.reason, e.source) for e in entries] == [
        ("a@example.org", "manual", "x"),
        ("b@example.org", "complaint", "x"),
    ]


def test_bad_lines_are_reported_with_their_number():
    text = "email,reason\nnot-an-address,manual\nc@example.org,bogus\nd@example.org,\n"
    entries, errors = parse_csv(text)
    assert [e.email for e in entries] == ["d@example.org"]
    assert errors[0].startswith("line 2: 'not-an-address' is not an email address")
    assert errors[1].startswith("line 3: reason 'bogus'")


def test_naive_expiry_is_refused():
    _, errors = parse_csv("a@example.org,manual,,2030-01-01T00:00:00")
    assert "has no time zone" in errors[0]


def test_export_then_import_round_trips():
    rows = [
        {
            "email": "a@example.org",
            "reason": "soft_bounce",
            "source": "ses:transient",
            "created_at": datetime(2026, 1, 1, tzinfo=UTC),
            "expires_at": datetime(2026, 1, 2, tzinfo=UTC),
        },
        {
            "email": "b@example.org",
            "reason": "manual",
            "source": None,
            "created_at": datetime(2026, 1, 1, tzinfo=UTC),
            "expires_at": None,
        },
    ]
    text = to_csv(rows)
    assert text.splitlines()[0] == "email,reason,source,created_at,expires_at"
    entries, errors = parse_csv(text)
    assert errors == []
    assert [(e.email, e.reason, e.source, e.expires_at) for e in entries] == [
        ("a@example.org", "soft_bounce", "ses:transient", datetime(2026, 1, 2, tzinfo=UTC)),
        ("b@example.org", "manual", None, None),
    ]
