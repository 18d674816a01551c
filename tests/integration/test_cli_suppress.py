"""`mailer suppress add|remove|list|import|export` against a real database."""

from __future__ import annotations

import csv
import io
import json


def listed(mailer):
    return {r["email"]: r for r in json.loads(mailer("suppress", "list", "--json"))}


def test_add_list_remove(mailer, sql):
    out = mailer("suppress", "add", "A@Example.org", "b@example.org", "--reason", "complaint")
    assert out.splitlines() == ["A@Example.org: suppressed", "b@example.org: suppressed"]
    assert mailer("suppress", "add", "a@example.org").splitlines() == [
        "a@example.org: already suppressed (kept)"
    ]
    rows = listed(mailer)
    assert set(rows) == {"A@Example.org", "b@example.org"}
    assert rows["A@Example.org"]["reason"] == "complaint"
    assert rows["A@Example.org"]["source"] == "cli"
    table = mailer("suppress", "list")
    assert "A@Example.org" in table and table.rstrip().endswith("2 suppressed")
    assert mailer("suppress", "remove", "a@EXAMPLE.org", "zed@example.org").splitlines() == [
        "a@EXAMPLE.org: removed",
        "zed@example.org: not suppressed",
    ]
    assert set(listed(mailer)) == {"b@example.org"}


def test_add_refuses_bad_addresses(mailer, sql):
    out = mailer("suppress", "add", "good@example.org", "not-an-address", code=2)
    assert "not an email address" in out
    assert sql.execute("SELECT count(*) AS n FROM suppressions").fetchone()["n"] == 0


def test_temporary_suppressions_expire_from_the_list(mailer, sql):
    mailer("suppress", "add", "t@example.org", "--reason", "soft_bounce", "--expires-in-hours", "1")
    assert listed(mailer)["t@example.org"]["expires_at"] is not None
    sql.execute("UPDATE suppressions SET expires_at = now() - interval '1 minute'")
    assert listed(mailer) == {}
    assert "t@example.org" in mailer("suppress", "list", "--all")


def test_import_then_export_round_trip(mailer, sql, tmp_path):
    source = tmp_path / "in.csv"
    source.write_text(
        "email,reason,source\n"
        "x@example.org,unsubscribe,crm\n"
        "y@example.org,,\n"
        "broken,manual,\n"
        "z@example.org,hard_bounce,old-esp\n",
        encoding="utf-8",
    )
    result = mailer("suppress", "import", str(source), code=1)
    assert "skipped line 4: 'broken' is not an email address" in result
    assert "imported 3 of 3 addresses (0 already suppressed, 1 invalid)" in result
    again = mailer("suppress", "import", "-", input="x@example.org\n")
    assert "imported 0 of 1 addresses (1 already suppressed, 0 invalid)" in again
    exported = mailer("suppress", "export")
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert [(r["email"], r["reason"], r["source"]) for r in rows] == [
        ("x@example.org", "unsubscribe", "crm"),
        ("y@example.org", "manual", "import"),
        ("z@example.org", "hard_bounce", "old-esp"),
    ]
    target = tmp_path / "out.csv"
    mailer("suppress", "export", str(target), "--reason", "hard_bounce")
    assert target.read_text().splitlines()[1].startswith("z@example.org,hard_bounce,old-esp,")
    # What was exported imports into an empty table unchanged (but for created_at).
    sql.execute("DELETE FROM suppressions")
    mailer("suppress", "import", "-", input=exported)

    def without_created_at(text):
        return [
            (r["email"], r["reason"], r["source"], r["expires_at"])
            for r in csv.DictReader(io.StringIO(text))
        ]

    assert without_created_at(mailer("suppress", "export")) == without_created_at(exported)
