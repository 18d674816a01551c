"""The fork server: workers forked from one preloaded template instead of fresh interpreters.

A fresh ``python -m mailer worker`` imports everything again (~50 MB, ~1 s of CPU). The
orchestrator instead starts one *template* process (``python -m orchestrator.forkserver``)
that imports what a worker needs, collects and freezes its objects (``gc.freeze()``: the
collector never touches them again, so their pages stay shared with every fork) and then
forks a worker per request. No event loop, thread or database connection exists in the
template before a fork.

Each worker is still its own OS process, supervised exactly like a spawned one: the
template forks twice (a short-lived middle process forks the workers of one request and
exits), so the workers are re-parented to the orchestrator, which declares itself a
child subreaper (``PR_SET_CHILD_SUBREAPER``). The orchestrator therefore reaps it,
signals it and sees its exit status; the worker then sets ``PR_SET_PDEATHSIG`` so it gets
SIGKILL when the orchestrator dies (the orchestrator held its account lock). A template
that dies is started again on the next spawn; workers already forked are not its
children and carry on.

Protocol, over a Unix socket pair: the orchestrator writes ``{"account_ids": [N, ...]}``
as one JSON line (the accounts it starts at once: a fleet starts in a few requests, not
one round trip per worker); the template answers ``{"pids": [P, ...]}``, one pid per
account in order, plus ``"error"`` when it forked fewer (or none). Linux only;
``MAILER_FORK_SERVER=0`` (or another OS) spawns fresh interpreters instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import gc
import json
import logging
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import setproctitle

if TYPE_CHECKING:
    from mailer.config import Settings
    from mailer.worker import WorkerTools

log = logging.getLogger("mailer.orchestrator")

#: prctl(2) options.
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
#: What the template imports before freezing: everything a worker's run touches.
PRELOAD = (
    "mailer.cli",
    "mailer.worker",
    "mailer.senders.smtp",
    "mailer.senders.gmail",
    "psycopg_pool",
    "aiosmtplib",
)
#: Imported too when installed (a worker runs on uvloop when it is: 6 ms of CPU each to
#: import it after the fork).
PRELOAD_OPTIONAL = ("uvloop",)
#: How long the template may take to import everything (a loaded host is slow).
PRELOAD_TIMEOUT_SECONDS = 120.0
#: How long a fork request may take before the template is deemed stuck, plus
#: SPAWN_SECONDS_PER_WORKER for each worker it asks for.
SPAWN_TIMEOUT_SECONDS = 10.0
SPAWN_SECONDS_PER_WORKER = 0.1


class ForkServerError(OSError):
    """The template could not fork a worker (it is restarted on the next spawn)."""


def _prctl(option: int, value: int) -> bool:
    """prctl(2); False when it failed or this is not Linux."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """This process gets ``sig`` when its parent dies (Linux; elsewhere nothing)."""
    _prctl(PR_SET_PDEATHSIG, sig)


def worker_preexec() -> None:
    """In a worker before it runs: SIGKILL when the orchestrator dies (it held the
    account's lock: no grace period), and ignore the wake-up signals (SIGUSR1, SIGUSR2)
    until the worker installs its handlers (an ignored disposition survives fork and exec).
    """
    die_with_parent(signal.SIGKILL)
    for sig in (signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)


def supported() -> bool:
    """Whether workers can be forked here: Linux with pidfds, and this process may become
    a child subreaper (it does, for good)."""
    return hasattr(os, "pidfd_open") and _prctl(PR_SET_CHILD_SUBREAPER, 1)


# -- the orchestrator's side --------------------------------------------------------------


class ForkedProcess:
    """A forked worker, with the part of ``asyncio.subprocess.Process`` the supervisor
    uses. It is the orchestrator's child (subreaper): ``wait`` reaps it through a pidfd."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._pidfd = os.pidfd_open(pid)
        loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[int] = loop.create_future()
        loop.add_reader(self._pidfd, self._reap)

    def _reap(self) -> None:
        with contextlib.suppress(ChildProcessError):
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == 0:
                return  # not yet (a spurious wake-up)
            self.returncode = os.waitstatus_to_exitcode(status)
        if self.returncode is None:  # reaped elsewhere: its status is lost
            self.returncode = -signal.SIGKILL
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        if not self._exited.done():
            self._exited.set_result(self.returncode)

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    def send_signal(self, sig: int) -> None:
        if self.returncode is not None:
            raise ProcessLookupError(self.pid)
        signal.pidfd_send_signal(self._pidfd, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ForkServer:
    """The orchestrator's handle on the template process (started on first use)."""

    def __init__(self, env: Callable[[], dict[str, str]]) -> None:
        self.env = env
        self.template: asyncio.subprocess.Process | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    async def spawn(self, account_ids: list[int]) -> dict[int, ForkedProcess | ForkServerError]:
        """Fork a worker for each of ``account_ids`` in one request: account id -> its
        process, or the ForkServerError that kept it from starting."""
        async with self._lock:
            try:
                if self._writer is None:
                    await self._start()
                timeout = SPAWN_TIMEOUT_SECONDS + SPAWN_SECONDS_PER_WORKER * len(account_ids)
                reply = await asyncio.wait_for(self._ask(account_ids), timeout)
            except (OSError, EOFError, TimeoutError, ValueError) as exc:
                await self.close()
                error = ForkServerError(f"the fork server failed: {exc or type(exc).__name__}")
                return dict.fromkeys(account_ids, error)
            pids = [int(pid) for pid in reply.get("pids", [])]
            failed = ForkServerError(reply.get("error", "the fork server gave no pid"))
            started: dict[int, ForkedProcess | ForkServerError] = dict.fromkeys(account_ids, failed)
            for account_id, pid in zip(account_ids, pids, strict=False):
                started[account_id] = ForkedProcess(pid)
            return started

    async def start(self) -> None:
        """Start the template now (it takes a few seconds to preload), not on first use."""
        async with self._lock:
            try:
                await self._start()
            except (OSError, EOFError, TimeoutError, ValueError) as exc:
                await self.close()
                log.error("cannot start the fork server (%s); retrying on the first spawn", exc)

    async def _ask(self, account_ids: list[int]) -> dict[str, Any]:
        assert self._writer is not None and self._reader is not None
        self._writer.write(json.dumps({"account_ids": account_ids}).encode() + b"\n")
        await self._writer.drain()
        line = await self._reader.readline()
        if not line:
            raise EOFError("the template exited")
        reply: dict[str, Any] = json.loads(line)
        return reply

    async def _start(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            self.template = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "orchestrator.forkserver",
                str(theirs.fileno()),
                str(os.getpid()),
                env=self.env(),
                stdin=asyncio.subprocess.DEVNULL,
                pass_fds=[theirs.fileno()],
                preexec_fn=die_with_parent,
            )
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        self._reader, self._writer = await asyncio.open_unix_connection(sock=ours)
        ready = await asyncio.wait_for(self._reader.readline(), PRELOAD_TIMEOUT_SECONDS)
        if json.loads(ready or b"{}").get("ready") is not True:
            raise EOFError("the template exited while preloading")
        log.info("started the fork server (pid %s)", self.template.pid)

    async def close(self) -> None:
        """Stop the template (forked workers are not its children and carry on)."""
        writer, template = self._writer, self.template
        self._reader = self._writer = None
        self.template = None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        if template is not None and template.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                template.terminate()
            try:
                await asyncio.wait_for(template.wait(), timeout=5)
            except TimeoutError:
                template.kill()
                await template.wait()


# -- the template's side ------------------------------------------------------------------


def preload() -> None:
    """Import what every worker needs, then freeze it all out of the collector's reach."""
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    for name in PRELOAD_OPTIONAL:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    from mailer.sql_queries import queries

    queries()  # the named statements, parsed once (cached)
    warm_up_crypto()
    with contextlib.suppress(ValueError, OSError):  # each worker will say what is wrong
        prebuilt_tools()
    gc.collect()
    gc.freeze()


def warm_up_crypto() -> None:
    """Derive the worker's keys once with a throw-away secret: OpenSSL initializes on its
    first use (3 ms of CPU), which every worker paid again after its fork."""
    from mailer.credentials import CredentialBox
    from mailer.tokens import TokenCodec
    from mailer.verp import VerpCodec

    secret = "template warm-up, not a key"
    CredentialBox(secret)
    TokenCodec(secret)
    VerpCodec(secret)


def serve(sock: socket.socket, orchestrator_pid: int) -> None:
    """Say ready, then answer fork requests until the orchestrator closes the socket."""
    sock.sendall(b'{"ready": true}\n')
    with sock, sock.makefile("rb") as requests:
        for line in requests:
            reply: dict[str, Any] = {"pids": []}
            try:
                account_ids = [int(a) for a in json.loads(line)["account_ids"]]
                reply["pids"] = fork_workers(account_ids, orchestrator_pid, sock)
                if len(reply["pids"]) < len(account_ids):
                    reply["error"] = "the worker could not be forked"
            except (OSError, ValueError, KeyError, TypeError) as exc:
                reply["error"] = f"{type(exc).__name__}: {exc}"
            sock.sendall(json.dumps(reply).encode() + b"\n")


def fork_workers(account_ids: list[int], orchestrator_pid: int, sock: socket.socket) -> list[int]:
    """Fork twice: one middle process forks a worker per account, says their pids and
    exits, so they are all re-parented to the orchestrator at once. Their pids, in
    order; fewer when a fork failed."""
    read_end, write_end = os.pipe()
    try:
        middle = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        raise
    if middle == 0:  # the short-lived middle process
        pids: list[str] = []
        try:
            os.close(read_end)
            for account_id in account_ids:
                worker = os.fork()
                if worker == 0:
                    os.close(write_end)
                    become_worker(account_id, orchestrator_pid, sock)
                pids.append(str(worker))
        finally:  # the pids so far say which accounts started (a fork can fail)
            os.write(write_end, (" ".join(pids) + "\n").encode())
            os._exit(0)
    os.close(write_end)
    with open(read_end, "rb") as pipe:
        answer = pipe.readline()  # not to EOF: no need to wait until each worker ran
    os.waitpid(middle, 0)
    return [int(pid) for pid in answer.split()]


def become_worker(account_id: int, orchestrator_pid: int, sock: socket.socket) -> None:
    """In the forked worker: wait to be the orchestrator's child, die with it, run."""
    code = 1
    try:
        os.close(sock.detach())  # not sock.close(): the template's reader keeps it open
        parent = os.getppid()
        if parent != orchestrator_pid:  # the middle process, still forking the others
            wait_for_exit(parent, 5)
        deadline = time.monotonic() + 5
        while os.getppid() != orchestrator_pid and time.monotonic() < deadline:
            time.sleep(0.001)  # the middle process's exit is being completed
        worker_preexec()
        if os.getppid() != orchestrator_pid:
            os._exit(0)  # the orchestrator is gone already
        setproctitle.setproctitle(f"{sys.executable} -m mailer worker --account-id {account_id}")
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        code = run_worker(account_id)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        logging.getLogger("mailer.worker").exception("worker for account %s crashed", account_id)
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def wait_for_exit(pid: int, timeout: float) -> None:
    """Sleep until process ``pid`` has exited (its pidfd becomes readable once it has,
    after its children were re-parented), at most ``timeout`` seconds."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return  # gone already
    try:
        select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)


@functools.cache
def worker_settings() -> Settings:
    """The workers' settings, with logging set up: done once in the template (it runs
    with its workers' environment, see ``Orchestrator._child_env``), not after every
    fork. Invalid settings raise ValueError (in each worker, which then exits)."""
    from mailer.config import load_settings
    from mailer.logs import setup_logging

    settings = load_settings()
    setup_logging(settings.log_format, settings.log_level)
    return settings


@functools.cache
def prebuilt_tools() -> WorkerTools:
    """The workers' renderer and credential box, built once in the template: every
    worker would build the same ones after its fork, touching fresh and shared pages
    (CPU that grows with the number of processes sharing them)."""
    from mailer.worker import worker_tools

    return worker_tools(worker_settings())


def run_worker(account_id: int) -> int:
    """What ``mailer worker --account-id N`` runs, in a forked worker."""
    from mailer.cli import run_until_signalled
    from mailer.worker import Worker, event_loop_factory

    settings = worker_settings()
    worker = Worker(settings, settings.database_url, account_id, tools=prebuilt_tools())
    return run_until_signalled(worker, settings, loop_factory=event_loop_factory())


def main(argv: list[str]) -> None:
    """``python -m orchestrator.forkserver FD ORCHESTRATOR_PID`` (the orchestrator runs it)."""
    sock = socket.socket(fileno=int(argv[0]))
    orchestrator_pid = int(argv[1])
    if os.getppid() != orchestrator_pid:
        sys.exit(1)
    for sig in (signal.SIGUSR1, signal.SIGUSR2):  # a forked worker's until it listens
        signal.signal(sig, signal.SIG_IGN)
    preload()
    serve(sock, orchestrator_pid)


if __name__ == "__main__":
    main(sys.argv[1:])
