"""Every CHECK and UNIQUE rule has a name saying what it requires (migration 0016), so a
violation tells the operator what is wrong; the rules themselves did not change."""

from __future__ import annotations

import re

import psycopg
import pytest


def test_no_constraint_or_unique_index_keeps_an_automatic_name(sql):
    rows = sql.execute(
        "SELECT conname AS name FROM pg_constraint "
        "WHERE connamespace = 'public'::regnamespace AND contype IN ('c', 'u') "
        "UNION ALL "
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND i.indisunique AND NOT i.indisprimary"
    ).fetchall()
    names = [r["name"] for r in rows]
    assert len(names) > 40
    assert [n for n in names if re.search(r"_(check|key)[0-9]*$", n)] == []


def test_a_null_subject_names_the_rule_it_breaks(sql):
    with pytest.raises(psycopg.errors.CheckViolation) as caught:
        sql.execute("INSERT INTO email_queue (to_address, html_body) VALUES ('a@b.example', 'x')")
    assert caught.value.diag.constraint_name == "email_queue_subject_or_template_required"
    sql.execute(  # what was accepted before still is
        "INSERT INTO email_queue (to_address, subject, text_body) VALUES ('a@b.example', 's', 'x')"
    )
