"""A person's data spread over every table that can hold it, and a check that none of it
is left anywhere in the database (every column of every table, read as text)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

ADDRESS = "Ann.Lee+news@Example.org"
NAME = "Annabel Leeworthy"
IP = "203.0.113.77"
AGENT = "AnnsPhone/9.1 (Secret Build)"
SUBJECT = "Your order Zebra-7731"
BODY = "<p>Deliver to 12 Quince Lane</p>"
SECRETS = (ADDRESS.lower(), NAME, IP, AGENT, "Zebra-7731", "Quince Lane", "order-ann-99")


@dataclass(frozen=True)
class Person:
    sent_id: int
    queued_id: int
    other_id: int
    account_id: int


def spread_person(sql: psycopg.Connection) -> Person:
    """Rows, attempts, events (with IP and user agent), a suppression, a bounce report
    and webhook deliveries about :data:`ADDRESS`, plus a row to someone else."""
    account = sql.execute(
        "INSERT INTO sender_accounts (email) VALUES ('news@shop.example') RETURNING id"
    ).fetchone()["id"]
    sql.execute(
        "INSERT INTO webhook_endpoints (url, events, secret_encrypted) "
        "VALUES ('https://hooks.example.net/x', '{sent,opened,bounced,cancelled}', 'enc')"
    )
    sent, queued, other = (_row(sql, to, account) for to in (ADDRESS, ADDRESS.upper(), "bob@x.org"))
    sql.execute(
        "UPDATE email_queue SET status = 'sent', sent_at = now(), sent_by_account_id = %s, "
        "last_error = %s WHERE id = %s",
        (account, f"earlier 450 for <{ADDRESS}>", sent),
    )
    sql.execute(
        "INSERT INTO send_logs (queue_id, account_id, outcome, counted, code, response) "
        "VALUES (%s, %s, 'sent', true, 250, %s)",
        (sent, account, f"250 2.0.0 OK queued for <{ADDRESS.lower()}>"),
    )
    _event(sql, sent, "open", {"ip": IP, "user_agent": AGENT})
    _event(sql, sent, "bounce", {"recipient": ADDRESS, "raw": f"To: {ADDRESS}", "code": 550})
    sql.execute("INSERT INTO suppressions (email, reason) VALUES (%s, 'complaint')", (ADDRESS,))
    decisions = [{"address": ADDRESS, "queue_id": sent, "kind": "hard_bounce"}]
    sql.execute(
        "INSERT INTO bounce_messages (report_key, kind, subject, decisions, raw) "
        "VALUES ('k1', 'dsn', %s, %s, %s)",
        (f"Undelivered: {ADDRESS}", Jsonb(decisions), f"Final-Recipient: {ADDRESS}".encode()),
    )
    return Person(sent, queued, other, account)


def _row(sql: psycopg.Connection, to: str, account: int) -> int:
    return sql.execute(
        "INSERT INTO email_queue (to_address, to_name, subject, html_body, text_body, "
        "variables, headers, metadata, account_id) "
        "VALUES (%s, %s, %s, %s, 'text', %s, %s, %s, %s) RETURNING id",
        (
            to,
            NAME,
            SUBJECT,
            BODY,
            Jsonb({"name": NAME}),
            Jsonb({"X-Ref": "order-ann-99"}),
            Jsonb({"customer": NAME}),
            account,
        ),
    ).fetchone()["id"]


def _event(sql: psycopg.Connection, queue_id: int, kind: str, data: dict[str, Any]) -> None:
    sql.execute(
        "INSERT INTO email_events (queue_id, type, data) VALUES (%s, %s, %s)",
        (queue_id, kind, Jsonb(data)),
    )


def leftovers(sql: psycopg.Connection, exclude_ids: tuple[int, ...] = ()) -> list[str]:
    """Every ``table: secret`` still found in any column of any table (rows of
    ``email_queue`` and their children with an id in ``exclude_ids`` left out)."""
    tables = [
        r["table_name"]
        for r in sql.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        )
    ]
    found = []
    for table in tables:
        for row in sql.execute(f'SELECT to_jsonb(t) AS j FROM "{table}" AS t'):
            data = row["j"]
            if _excluded(table, data, exclude_ids):
                continue
            text = str(data).lower()
            found += [
                f"{table}: {s}" for s in SECRETS if s.lower() in text or s.encode().hex() in text
            ]
    return found


def _excluded(table: str, data: dict[str, Any], ids: tuple[int, ...]) -> bool:
    if table == "email_queue":
        return data["id"] in ids
    return data.get("queue_id") in ids if "queue_id" in data else False
