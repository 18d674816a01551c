"""What the bounce samples must produce, and the database reads that check it (shared by
the IMAP and the Gmail bounce mailbox tests)."""

from __future__ import annotations

from typing import Any

REPORTS = ("postfix", "exim", "exchange", "gmail", "yahoo", "delayed", "arf")
LEFT_ALONE = ("vacation", "challenge", "unrelated", "foreign")
#: sample -> (event type, kind, status, suppression reason)
OUTCOMES = {
    "postfix": ("bounce", "hard_bounce", "5.1.1", "hard_bounce"),
    "exim": ("bounce", "hard_bounce", "5.1.1", "hard_bounce"),
    "exchange": ("bounce", "hard_bounce", "5.1.10", "hard_bounce"),
    "gmail": ("bounce", "hard_bounce", "5.1.1", "hard_bounce"),
    "yahoo": ("bounce", "hard_bounce", None, "hard_bounce"),
    "delayed": ("bounce", "soft_bounce", "4.4.1", None),
    "arf": ("complaint", "complaint", None, "complaint"),
}


def sent_row(sql: Any, account_id: int, name: str) -> dict[str, Any]:
    """A row this account sent to ``<name>@example.org``."""
    return sql.execute(
        "INSERT INTO email_queue (to_address, subject, html_body, status, message_id, "
        "sent_by_account_id, sent_at) VALUES (%s, 'Our autumn sale', '<p>Sale</p>', 'sent', "
        "%s, %s, now()) RETURNING id, to_address, message_id",
        (f"{name}@example.org", f"<{name}.20261201@shop.example>", account_id),
    ).fetchone()


def suppressions(sql: Any) -> dict[str, tuple[str, bool]]:
    rows = sql.execute("SELECT email, reason, expires_at FROM suppressions").fetchall()
    return {r["email"]: (r["reason"], r["expires_at"] is not None) for r in rows}


def events(sql: Any) -> list[dict[str, Any]]:
    return sql.execute(
        "SELECT queue_id, account_id, type, data FROM email_events ORDER BY id"
    ).fetchall()


def assert_sample_outcomes(sql: Any, account_id: int, rows: dict[str, dict[str, Any]]) -> None:
    """Exactly the suppressions, events and stored reports the samples in ``rows`` (name
    -> the row each reports on) must give: one event per report, on its row."""
    assert suppressions(sql) == {
        rows[name]["to_address"]: (OUTCOMES[name][3], False)
        for name in REPORTS
        if OUTCOMES[name][3]
    }
    by_row = {e["queue_id"]: e for e in events(sql)}
    assert len(events(sql)) == len(REPORTS) and set(by_row) == {rows[n]["id"] for n in REPORTS}
    for name in REPORTS:
        event = by_row[rows[name]["id"]]
        type_, kind, status, _ = OUTCOMES[name]
        assert (event["type"], event["data"]["kind"], event["data"].get("status")) == (
            type_,
            kind,
            status,
        )
        assert event["account_id"] == account_id
        assert event["data"]["recipient"] == rows[name]["to_address"]
        assert event["data"]["message_id"] == rows[name]["message_id"]
        raw = sql.execute(
            "SELECT raw FROM bounce_messages WHERE id = %s", (event["data"]["bounce_id"],)
        ).fetchone()["raw"]
        assert rows[name]["message_id"].encode() in bytes(raw)
    assert sql.execute("SELECT count(*) AS n FROM bounce_messages").fetchone()["n"] == 7
