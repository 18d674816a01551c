"""The benchmark's environment: a PostgreSQL server, a dedicated database, a sink process
and ``mailer run``, each started and stopped for real.

Without ``DATABASE_URL`` the benchmark starts its own embedded PostgreSQL (pgserver) in a
temporary directory (raising ``max_connections`` so 1,000 idle accounts fit even at two
connections each) and removes it afterwards. With it, it creates and drops a database named
``mailer_bench`` on that server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import IO, Any

import psutil
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row

from mailer.db import Database
from mailer.migrate import migrate
from mailer.sql_queries import parse_query_blocks

ROOT = Path(__file__).resolve().parents[1]
BENCH_DATABASE = "mailer_bench"
SECRET_KEY = "mailer-bench-secret-key"


@cache
def package_queries(package: str) -> dict[str, str]:
    """The named statements of ``<package>/queries.sql`` (bench's, chaos's)."""
    text = resources.files(package).joinpath("queries.sql").read_text(encoding="utf-8")
    return parse_query_blocks(text)


def q(name: str) -> str:
    """A named statement of ``bench/queries.sql``."""
    return package_queries("bench")[name]


def connect(url: str, **kwargs: Any) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True, row_factory=dict_row, **kwargs)


def one(conn: psycopg.Connection, name: str, params: dict[str, Any] | None = None) -> Any:
    return conn.execute(q(name), params or {}).fetchone()


@dataclass
class Server:
    """A PostgreSQL server: its URL, and (embedded only) its data directory and pid."""

    url: str
    embedded: bool
    data_dir: Path | None = None
    system_user: str | None = None

    def postmaster(self) -> psutil.Process | None:
        """The postmaster, when the server runs on this machine (found through the pid of
        this session's backend), else None."""
        with connect(self.url) as conn:
            pid = conn.info.backend_pid
            try:
                return psutil.Process(pid).parent()
            except psutil.Error:
                return None

    def backends(self) -> list[psutil.Process]:
        """Every process of the server (postmaster and children), when local."""
        try:
            master = self.postmaster()
        except (OSError, psutil.Error):
            return []
        if master is None:
            return []
        return [master, *master.children(recursive=True)]


@contextlib.contextmanager
def postgres_server() -> Iterator[Server]:
    """``DATABASE_URL``'s server, or a temporary embedded one (stopped and removed after)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield Server(url, embedded=False)
        return
    with embedded_postgres(max_connections=2100) as server:
        yield server


@contextlib.contextmanager
def worker_pool(server: Server, pool_size: int | None) -> Iterator[Callable[[str], str] | None]:
    """With ``pool_size``: a PgBouncer in front of ``server`` for the workers' queries;
    yields how to reach a database through it (None without)."""
    if pool_size is None:
        yield None
        return
    from tests.support.pgbouncer import PGBOUNCER, SKIP_REASON, pgbouncer

    if PGBOUNCER is None:
        raise SystemExit(SKIP_REASON)
    with pgbouncer(server.url, pool_size, run_as=server.system_user) as bouncer:
        yield bouncer.url


def pg_ctl(server: Server, *args: str, timeout: float = 60) -> None:
    """Run the ``pg_ctl`` shipped with pgserver on an embedded ``server`` (e.g.
    ``pg_ctl(server, "-w", "-m", "fast", "restart")``)."""
    from pgserver._commands import pg_ctl as run_pg_ctl

    assert server.data_dir is not None, "pg_ctl needs an embedded server"
    run_pg_ctl(list(args), pgdata=server.data_dir, user=server.system_user, timeout=timeout)


@contextlib.contextmanager
def embedded_postgres(max_connections: int) -> Iterator[Server]:
    """A temporary embedded PostgreSQL (pgserver) in its own directory, stopped and removed
    after. Its settings live in the data directory (``ALTER SYSTEM``), so a plain
    ``pg_ctl start`` after a stop brings it back on the same socket."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        tmp = Path(tempfile.mkdtemp(prefix="mailer-pg-"))
        pgdata = pgserver.get_server(tmp / "pgdata", cleanup_mode=None)
    server = Server(
        str(pgdata.get_uri()),
        embedded=True,
        data_dir=pgdata.pgdata,
        system_user=pgdata.system_user,
    )
    try:
        with connect(server.url) as conn:
            settings: dict[str, object] = {"max_connections": max_connections}
            for name in ("listen_addresses", "port", "unix_socket_directories"):
                settings[name] = one(conn, "show_setting", {"name": name})["value"]
            for name, value in settings.items():
                conn.execute(
                    sql.SQL(q("alter_system")).format(
                        name=sql.Identifier(name), value=sql.Literal(value)
                    )
                )
        # restart reuses the original options (postmaster.opts)
        pg_ctl(server, "-w", "-m", "fast", "restart")
        yield server
    finally:
        with contextlib.suppress(Exception):
            pg_ctl(server, "-w", "-m", "fast", "stop")
        shutil.rmtree(tmp, ignore_errors=True)


def fresh_database(server: Server) -> str:
    """(Re)create the ``mailer_bench`` database, migrated; return its URL."""
    with connect(server.url) as conn:
        conn.execute(q("drop_database"))
        conn.execute(q("create_database"))
    url = make_conninfo(server.url, dbname=BENCH_DATABASE)

    async def go() -> None:
        async with Database(url) as db:
            await migrate(db)

    asyncio.run(go())
    return url


def drop_database(server: Server) -> None:
    with connect(server.url) as conn:
        conn.execute(q("drop_database"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server_process(argv: list[str], what: str, stdin: int) -> subprocess.Popen[str]:
    """Start a server process (text stdout piped) and wait for its "listening" line."""
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=mailer_env(""), text=True, stdout=subprocess.PIPE, stdin=stdin
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening" not in line:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"{what} did not start: {line!r}")
    return proc


class Sink:
    """``python -m mailer sink`` in its own process (discard mode unless ``directory``)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.directory = directory
        argv = [
            sys.executable,
            "-m",
            "mailer",
            "sink",
            "--quiet",
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]
        argv += ["--directory", str(directory)] if directory else ["--discard"]
        self.proc = start_server_process(argv, "the sink", stdin=subprocess.DEVNULL)
        self.process = psutil.Process(self.proc.pid)

    def stop(self) -> int:
        """Stop the sink; return how many messages it accepted."""
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        for line in out.splitlines():
            if "stopped after" in line:
                return int(line.split("after")[1].split()[0])
        return -1

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.stop()


def mailer_env(url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    if url:
        env["DATABASE_URL"] = url
    env["MAILER_SECRET_KEY"] = SECRET_KEY
    env["MAILER_LOG_LEVEL"] = env.get("BENCH_LOG_LEVEL", "WARNING")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env | extra


class MailerRun:
    """``python -m mailer run`` against ``url``; :meth:`stop` SIGTERMs it and waits.
    Its output (and its workers') goes to ``log`` when given, else to this process's."""

    def __init__(self, url: str, log: IO[bytes] | None = None, **extra_env: str) -> None:
        self.started = time.time()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailer", "run"],
            cwd=ROOT,
            env=mailer_env(url, **extra_env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT if log else None,
        )
        self.process = psutil.Process(self.proc.pid)

    def workers(self) -> list[psutil.Process]:
        """The live worker processes (a killed one not yet reaped is skipped)."""
        found = []
        for p in self.all_processes()[1:]:
            with contextlib.suppress(psutil.Error):
                # a forked worker's title is one string: "python -m mailer worker ..."
                argv = " ".join(p.cmdline()).split()
                if p.status() != psutil.STATUS_ZOMBIE and "worker" in argv:
                    found.append(p)
        return found

    def all_processes(self) -> list[psutil.Process]:
        try:
            return [self.process, *self.process.children(recursive=True)]
        except psutil.Error:
            return []

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                for p in self.all_processes()[::-1]:
                    with contextlib.suppress(psutil.Error):
                        p.kill()
                self.proc.wait()

    def __enter__(self) -> MailerRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def machine_facts(server: Server) -> dict[str, Any]:
    with connect(server.url) as conn:
        facts = conn.execute(q("server_facts")).fetchone()
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": psutil.cpu_count(logical=True),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "postgres": facts["version"].split(" on ")[0],
        "postgres_embedded": server.embedded,
        "max_connections": int(facts["max_connections"]),
        "shared_buffers": facts["shared_buffers"],
        "synchronous_commit": facts["synchronous_commit"],
    }
