"""The outcome journal: what a worker did, on local disk before the database knows it.

Each worker appends JSON lines to ``MAILER_HOME/journal/<account id>/<worker id>.jsonl``
and holds an exclusive ``flock`` on that file while it lives:

* ``{"k": "preparing", "id": N}`` before it renders row N (so a row that kills every
  worker that prepares it can be recognised: a poison row);
* ``{"k": "outcome", "seq": S, "result": {...}}`` as soon as an attempt's outcome is known,
  before the worker goes on (row N's outcome is written on row N's own path);
* ``{"k": "written", "seq": S}`` once every outcome up to S is committed in PostgreSQL.

A plain ``write`` reaches the page cache, which outlives a ``kill -9`` of the worker; an
``fsync`` every ``journal_fsync_seconds`` bounds what a crash of the whole host can lose
to the outcomes of that interval. When a worker ends normally with nothing pending its
file is removed. A file whose ``flock`` can be taken belongs to a dead worker: its
account's next worker (or the host's orchestrator) replays it into the database
(idempotently: every attempt has an ``attempt_id``) and removes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from mailer.queue import AttemptResult

log = logging.getLogger("mailer.journal")

#: A journal with nothing pending is emptied once it grows past this many bytes.
COMPACT_BYTES = 1 << 20


def journal_dir(home: Path, account_id: int | None = None) -> Path:
    """Where journals live (all accounts, or one account's)."""
    base = Path(home) / "journal"
    return base if account_id is None else base / str(account_id)


class OutcomeJournal:
    """A live worker's journal (see the module docstring)."""

    def __init__(self, home: Path, account_id: int, worker_id: str, fsync_seconds: float):
        self.path = journal_dir(home, account_id) / f"{worker_id}.jsonl"
        self.fsync_seconds = fsync_seconds
        self._file: IO[str] | None = None
        self._seq = 0
        self._written = 0
        self._last_sync = time.monotonic()

    def open(self) -> None:
        """Create the file and hold its lock for the life of the worker."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def preparing(self, row_id: int) -> None:
        """Row ``row_id`` is about to be rendered and sent."""
        self._append({"k": "preparing", "id": row_id})

    def outcome(self, result: AttemptResult) -> int:
        """Record an attempt's outcome; returns its sequence number."""
        self._seq += 1
        self._append({"k": "outcome", "seq": self._seq, "result": result.as_json()})
        return self._seq

    def written(self, seq: int) -> None:
        """Every outcome up to ``seq`` is committed in the database."""
        if seq <= self._written:
            return
        self._written = seq
        self._append({"k": "written", "seq": seq})
        if seq == self._seq and self._file is not None and self._file.tell() > COMPACT_BYTES:
            self._file.truncate(0)
            self._file.seek(0)

    @property
    def seq(self) -> int:
        """The sequence number of the latest outcome."""
        return self._seq

    def sync(self, force: bool = False) -> None:
        """fsync when ``journal_fsync_seconds`` passed since the last one (or ``force``)."""
        if self._file is None:
            return
        now = time.monotonic()
        if force or now - self._last_sync >= self.fsync_seconds:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._last_sync = now

    def close(self) -> None:
        """Release the file; remove it when every outcome reached the database."""
        if self._file is None:
            return
        file, self._file = self._file, None
        if self._written >= self._seq:
            self.path.unlink(missing_ok=True)
        else:
            file.flush()
            os.fsync(file.fileno())
        file.close()

    def _append(self, entry: dict[str, Any]) -> None:
        if self._file is None:
            return
        self._file.write(json.dumps(entry, separators=(",", ":")) + "\n")
        self._file.flush()
        self.sync()


@dataclass(frozen=True)
class DeadJournal:
    """What a dead worker's journal says: outcomes not known to be in the database, and
    the row it was preparing when it died (if it had no outcome for it)."""

    path: Path
    account_id: int
    worker_id: str
    pending: list[AttemptResult]
    preparing: int | None


def read_journal(path: Path) -> DeadJournal:
    """Parse a journal; a torn last line (the worker died mid-write) is ignored."""
    outcomes: dict[int, AttemptResult] = {}
    written = 0
    preparing: int | None = None
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        kind = entry.get("k")
        if kind == "preparing":
            preparing = entry["id"]
        elif kind == "outcome":
            result = AttemptResult.from_json(entry["result"])
            outcomes[entry["seq"]] = result
            if result.id == preparing:
                preparing = None
        elif kind == "written":
            written = max(written, entry["seq"])
    pending = [r for seq, r in sorted(outcomes.items()) if seq > written]
    return DeadJournal(path, int(path.parent.name), path.stem, pending, preparing)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[bool]:
    """Try to take ``path``'s lock: True when its worker is dead (we hold it now)."""
    try:
        file = open(path, encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        yield True
    finally:
        file.close()


def _journal_files(home: Path, account_id: int | None) -> list[Path]:
    """The journals of one account, or of all, sorted (``os.scandir``: every worker looks
    at start, and ``Path.glob`` cost it a millisecond or two of CPU)."""
    if account_id is not None:
        return _jsonl_files(journal_dir(home, account_id))
    return [path for d in _subdirectories(journal_dir(home)) for path in _jsonl_files(d)]


def _jsonl_files(directory: Path) -> list[Path]:
    try:
        with os.scandir(directory) as entries:
            names = [e.name for e in entries if e.name.endswith(".jsonl") and e.is_file()]
    except FileNotFoundError:
        return []
    return [directory / name for name in sorted(names)]


def _subdirectories(directory: Path) -> list[Path]:
    try:
        with os.scandir(directory) as entries:
            names = [e.name for e in entries if e.is_dir()]
    except FileNotFoundError:
        return []
    return [directory / name for name in sorted(names)]


def live_worker_ids(home: Path, account_ids: list[int] | None = None) -> list[str]:
    """Ids of this host's workers (of some accounts, or all) that are alive (their
    journal is locked)."""
    paths = (
        _journal_files(home, None)
        if account_ids is None
        else [p for a in account_ids for p in _journal_files(home, a)]
    )
    live = []
    for path in paths:
        with _locked(path) as dead:
            if not dead:
                live.append(path.stem)
    return live


@contextlib.contextmanager
def dead_journals(home: Path, account_id: int | None = None) -> Iterator[list[DeadJournal]]:
    """The journals of dead workers (of one account, or all), locked for the block; call
    :func:`discard` on each once it is replayed."""
    with contextlib.ExitStack() as stack:
        found = []
        for path in _journal_files(home, account_id):
            if stack.enter_context(_locked(path)):
                try:
                    found.append(read_journal(path))
                except (OSError, ValueError, KeyError, TypeError):
                    log.exception("unreadable outcome journal %s left in place", path)
        yield found


def discard(journal: DeadJournal) -> None:
    """Remove a replayed journal."""
    journal.path.unlink(missing_ok=True)
