"""The outcome journal: what a dead worker's file says, and who counts as dead."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from mailer.journal import OutcomeJournal, dead_journals, live_worker_ids, read_journal
from mailer.queue import AttemptResult


def result(row_id: int) -> AttemptResult:
    return AttemptResult(
        id=row_id,
        status="sent",
        attempted_at=datetime(2026, 12, 1, tzinfo=UTC),
        to_address=f"r{row_id}@example.org",
        outcome="sent",
        counted=True,
        code=250,
    )


def test_pending_outcomes_are_those_after_the_last_written_mark(tmp_path: Path):
    journal = OutcomeJournal(tmp_path, 4, "host:1:abc", fsync_seconds=0)
    journal.open()
    journal.preparing(1)
    journal.written(journal.outcome(result(1)))
    journal.preparing(2)
    second = result(2)
    journal.outcome(second)
    journal.preparing(3)  # died while preparing row 3
    dead = read_journal(journal.path)
    assert dead.pending == [second]  # every field survives, attempt_id included
    journal.close()
    assert (dead.preparing, dead.account_id, dead.worker_id) == (3, 4, "host:1:abc")


def test_a_torn_last_line_is_ignored(tmp_path: Path):
    journal = OutcomeJournal(tmp_path, 4, "w", fsync_seconds=0)
    journal.open()
    journal.outcome(result(1))
    with open(journal.path, "a") as f:
        f.write('{"k": "outcome", "seq": 2, "res')
    assert [r.id for r in read_journal(journal.path).pending] == [1]
    journal.close()


def test_a_live_workers_journal_is_not_replayed_and_a_clean_close_removes_it(tmp_path: Path):
    journal = OutcomeJournal(tmp_path, 4, "alive", fsync_seconds=0)
    journal.open()
    journal.outcome(result(1))
    assert live_worker_ids(tmp_path) == ["alive"]
    with dead_journals(tmp_path) as dead:
        assert dead == []
    journal.written(journal.seq)
    journal.close()
    assert not journal.path.exists()


def test_a_journal_with_pending_outcomes_outlives_its_worker(tmp_path: Path):
    journal = OutcomeJournal(tmp_path, 4, "gone", fsync_seconds=0)
    journal.open()
    unwritten = result(1)
    journal.outcome(unwritten)
    journal.close()  # the worker could not write it to the database
    assert live_worker_ids(tmp_path) == []
    with dead_journals(tmp_path, 4) as dead:
        assert [(d.worker_id, d.pending) for d in dead] == [("gone", [unwritten])]
