"""A private PgBouncer (Debian's ``pgbouncer`` package) in ``pool_mode = transaction`` in
front of the test PostgreSQL, as README "PgBouncer" sets one up, and a sampler of the
server connections it holds (its admin console's ``SHOW POOLS`` and PostgreSQL's
``pg_stat_activity``)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from tests.support.tracking_env import free_port

PGBOUNCER = shutil.which("pgbouncer") or (
    "/usr/sbin/pgbouncer" if os.access("/usr/sbin/pgbouncer", os.X_OK) else None
)
SKIP_REASON = "pgbouncer not installed (Debian package `pgbouncer`)"


@dataclass
class PgBouncer:
    """A running PgBouncer: ``url(dbname)`` reaches ``dbname`` through it, as ``role``."""

    port: int
    role: str
    pool_size: int

    def url(self, dbname: str) -> str:
        return make_conninfo(host="127.0.0.1", port=self.port, user="mailer", dbname=dbname)

    def admin(self) -> psycopg.Connection:
        """Its admin console (simple query protocol only: no prepared statements)."""
        return psycopg.connect(
            self.url("pgbouncer"), autocommit=True, row_factory=dict_row, prepare_threshold=None
        )


def _config(server_url: str, role: str, port: int, pool_size: int) -> str:
    server = conninfo_to_dict(server_url)
    target = make_conninfo(
        host=server.get("host") or "127.0.0.1", port=server.get("port") or 5432, user=role
    )
    return f"""[databases]
* = {target}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = any
admin_users = mailer
pool_mode = transaction
default_pool_size = {pool_size}
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 200
server_reset_query =
server_check_delay = 0
server_login_retry = 1
"""


def _run_as(user: str | None, server_url: str) -> list[str]:
    """PgBouncer refuses to run as root: drop to ``user``, else the owner of the server's
    socket directory (the embedded server's is its own user's alone), else ``postgres``,
    else ``nobody``."""
    if os.geteuid() != 0:
        return []
    host = str(conninfo_to_dict(server_url).get("host") or "")
    owner = pwd.getpwuid(Path(host).stat().st_uid).pw_name if host.startswith("/") else None
    for candidate in (user, owner, "postgres", "nobody"):
        if candidate is None:
            continue
        try:
            pwd.getpwnam(candidate)
        except KeyError:
            continue
        return ["-u", candidate]
    return []


@contextmanager
def pgbouncer(server_url: str, pool_size: int, run_as: str | None = None) -> Iterator[PgBouncer]:
    """Start a PgBouncer whose server connections log in as a role of their own (so
    PostgreSQL's ``pg_stat_activity`` tells them apart); stop it and drop the role.
    ``run_as``: the system user it runs as when started by root."""
    assert PGBOUNCER is not None, SKIP_REASON
    role = f"mailer_pgb_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP ROLE IF EXISTS "{role}"')
        conn.execute(f'CREATE ROLE "{role}" LOGIN SUPERUSER')
    directory = Path(tempfile.mkdtemp(prefix="mailer-pgbouncer-"))
    directory.chmod(0o755)
    port = free_port()
    ini = directory / "pgbouncer.ini"
    ini.write_text(_config(server_url, role, port, pool_size))
    ini.chmod(0o644)
    log = open(directory / "pgbouncer.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [PGBOUNCER, *_run_as(run_as, server_url), str(ini)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        running = PgBouncer(port, role, pool_size)
        _wait_listening(running, process, directory)
        yield running
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
        shutil.rmtree(directory, ignore_errors=True)
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (role,),
            )
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def _wait_listening(running: PgBouncer, process: subprocess.Popen, directory: Path) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            running.admin().close()
            return
        except psycopg.OperationalError:
            if process.poll() is not None or time.monotonic() > deadline:
                log = (directory / "pgbouncer.log").read_text(errors="replace")
                raise AssertionError(f"pgbouncer did not start:\n{log}") from None
            time.sleep(0.05)


@dataclass
class PoolSampler:
    """Samples, every 20 ms in a thread, what a user would watch: PgBouncer's server and
    client connections for ``dbname`` (``SHOW POOLS``), PostgreSQL's backends logged in as
    PgBouncer's role, and the other (direct) backends of ``direct_url``'s database."""

    bouncer: PgBouncer
    dbname: str
    direct_url: str
    most_servers: int = 0
    most_clients: int = 0
    most_backends: int = 0
    most_direct: int = 0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with (
            self.bouncer.admin() as admin,
            psycopg.connect(self.direct_url, autocommit=True, row_factory=dict_row) as pg,
        ):
            while not self._stop.wait(0.02):
                self._sample(admin, pg)

    def _sample(self, admin: psycopg.Connection, pg: psycopg.Connection) -> None:
        for pool in admin.execute("SHOW POOLS").fetchall():
            if pool["database"] != self.dbname:
                continue
            servers = sum(pool[k] for k in ("sv_active", "sv_idle", "sv_used", "sv_tested"))
            self.most_servers = max(self.most_servers, servers + pool["sv_login"])
            self.most_clients = max(self.most_clients, pool["cl_active"] + pool["cl_waiting"])
        row = pg.execute(
            "SELECT count(*) FILTER (WHERE usename = %(role)s) AS bouncer, "
            "count(*) FILTER (WHERE usename <> %(role)s AND pid <> pg_backend_pid()) AS direct "
            "FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_type = 'client backend'",
            {"role": self.bouncer.role},
        ).fetchone()
        assert row is not None
        self.most_backends = max(self.most_backends, row["bouncer"])
        self.most_direct = max(self.most_direct, row["direct"])
        self.samples += 1

    @contextmanager
    def running(self) -> Iterator[PoolSampler]:
        thread = threading.Thread(target=self.run, name="pool-sampler", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(timeout=5)
