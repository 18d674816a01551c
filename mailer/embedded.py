"""The embedded PostgreSQL under ``MAILER_HOME/pgdata`` (the ``pgserver`` package): start it
(or reuse it) and stop it.

``pgserver`` keeps a list of the processes using a server (``.handle_pids.json``) and stops
the server when the last one exits normally; Mailer starts it with ``cleanup_mode=None`` so
it outlives the commands that use it. A process ended by a signal never leaves that list,
so ``mailer db stop`` does not rely on it: it drops dead processes from the list, refuses
while live ones remain (unless forced), and stops the postmaster itself.
"""

from __future__ import annotations

import json
import os
import signal
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from mailer.errors import MailerError

#: How long ``stop`` waits for a fast shutdown before an immediate one.
FAST_SHUTDOWN_SECONDS = 20.0
#: How long it then waits for the immediate shutdown.
IMMEDIATE_SHUTDOWN_SECONDS = 10.0


class EmbeddedServerError(MailerError):
    """The embedded server could not be started or stopped; the message says why."""


@dataclass(frozen=True)
class StopResult:
    """What ``stop`` did: ``pid`` of the postmaster it stopped (None: none was running),
    and the dead processes it dropped from pgserver's list of users."""

    pid: int | None
    stale_pids: tuple[int, ...]


def data_dir(home: Path) -> Path:
    """Where the embedded cluster lives."""
    return (home / "pgdata").resolve()


def embedded_database_url(home: Path) -> str:
    """Start (or reuse) the embedded PostgreSQL under ``home/pgdata``; return its URL.

    The server keeps running after this process exits so that workers, the web app and
    later commands share it; ``mailer db stop`` stops it.
    """
    pgdata = data_dir(home)
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver

            server = pgserver.get_server(pgdata, cleanup_mode=None)
        return str(server.get_uri())
    except Exception as exc:  # pgserver raises anything from OSError to AssertionError
        raise EmbeddedServerError(
            f"cannot start the embedded PostgreSQL in {pgdata}: {one_line(exc)}"
        ) from exc


def stop_embedded_database(home: Path, *, force: bool = False) -> StopResult:
    """Stop the embedded PostgreSQL under ``home/pgdata``.

    Raises :class:`EmbeddedServerError` when live processes still use it (and not
    ``force``) or when it does not stop."""
    pgdata = data_dir(home)
    pid = postmaster_pid(pgdata)
    handles = pgdata / ".handle_pids.json"
    users = _read_pids(handles)
    stale = tuple(p for p in users if not _alive(p))
    live = [p for p in users if _alive(p) and p != os.getpid()]
    if pid is None:
        _write_pids(handles, [])
        return StopResult(None, stale)
    if live and not force:
        raise EmbeddedServerError(
            f"the embedded PostgreSQL (pid {pid}) is in use by process(es) "
            f"{', '.join(map(str, live))}: stop them first, or use --force"
        )
    _shutdown(pid)
    _write_pids(handles, [])
    return StopResult(pid, stale)


def postmaster_pid(pgdata: Path) -> int | None:
    """The running postmaster's pid, from ``postmaster.pid``; None when none runs."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def _shutdown(pid: int) -> None:
    """Fast shutdown (SIGINT), then immediate (SIGQUIT); raise if the server stays."""
    for sig, wait in (
        (signal.SIGINT, FAST_SHUTDOWN_SECONDS),
        (signal.SIGQUIT, IMMEDIATE_SHUTDOWN_SECONDS),
    ):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError as exc:
            raise EmbeddedServerError(
                f"cannot signal the embedded PostgreSQL (pid {pid}): {exc.strerror}"
            ) from None
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.1)
    raise EmbeddedServerError(f"the embedded PostgreSQL (pid {pid}) did not stop")


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _read_pids(path: Path) -> list[int]:
    try:
        return [int(p) for p in json.loads(path.read_text())]
    except (OSError, ValueError, TypeError):
        return []


def _write_pids(path: Path, pids: list[int]) -> None:
    if path.parent.exists():
        path.write_text(json.dumps(pids))


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (psycopg and pgserver messages span several)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
