"""``supervisord.conf`` works as shipped: supervisord runs the orchestrator against a test
database, mail goes out, and ``supervisorctl stop`` shuts everything down cleanly.

The file is copied, unchanged, into a fresh directory laid out like a checkout (``.venv``
links to this one's): its paths are all relative to its own location, and a private
directory keeps concurrent test runs from sharing one control socket."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mailer_env import add_account, insert_emails, statuses, wait_until
from tests.support.smtp_server import ScriptedSMTPServer

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"


@pytest.fixture
def checkout() -> Iterator[Path]:
    """A short-pathed directory holding supervisord.conf, .venv and an empty .mailer/."""
    path = Path(tempfile.mkdtemp(prefix="mailer-sv-"))
    shutil.copy(ROOT / "supervisord.conf", path / "supervisord.conf")
    (path / ".venv").symlink_to(ROOT / ".venv")
    (path / ".mailer").mkdir()
    yield path
    shutil.rmtree(path)


def supervisor_env(db_url: str) -> dict[str, str]:
    """What an operator exports before starting supervisord (no virtualenv active)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MAILER_") and k not in ("DATABASE_URL", "VIRTUAL_ENV")
    }
    env["PATH"] = os.pathsep.join(
        p
        for p in env.get("PATH", "").split(os.pathsep)
        if p and Path(p).resolve() != VENV_BIN.resolve()
    )
    env.update(
        {
            "DATABASE_URL": db_url,
            "MAILER_SECRET_KEY": "test-secret-key",
            "MAILER_WEB_BIND": f"127.0.0.1:{WEB_PORT}",
            "MAILER_HEARTBEAT_SECONDS": "0.3",
            "MAILER_POLL_SECONDS": "1",
            "MAILER_ORCHESTRATOR_POLL_SECONDS": "0.5",
            "MAILER_SHUTDOWN_GRACE_SECONDS": "5",
            "MAILER_LEASE_SECONDS": "5",
        }
    )
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


WEB_PORT = free_port()


def healthz() -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{WEB_PORT}/healthz", timeout=2) as r:
            return r.status
    except OSError:
        return None


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@pytest.mark.slow
async def test_supervisord_runs_the_orchestrator_and_stops_it_cleanly(sql, db_url, checkout):
    env = supervisor_env(db_url) | {"MAILER_HOME": str(checkout / ".mailer")}

    def ctl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(VENV_BIN / "supervisorctl"), "-c", "supervisord.conf", *args],
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp, email="sender@example.com")
        insert_emails(sql, 5)
        with open(checkout / "supervisord.stdout", "wb") as out:
            supervisord = subprocess.Popen(
                [str(VENV_BIN / "supervisord"), "-c", "supervisord.conf", "-n"],
                cwd=checkout,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        orchestrator_pid = None
        try:
            await wait_until(
                lambda: statuses(sql) == {"sent": 5},
                timeout=15,
                message="mail sent under supervisord",
            )
            await wait_until(
                lambda: "RUNNING" in ctl("status", "mailer-orchestrator").stdout,
                timeout=10,
                message="mailer-orchestrator RUNNING",
            )
            await wait_until(
                lambda: "RUNNING" in ctl("status", "mailer-web").stdout,
                timeout=15,
                message="mailer-web RUNNING",
            )
            await wait_until(lambda: healthz() == 200, timeout=10, message="web /healthz")
            orchestrator_pid = int(ctl("pid", "mailer-orchestrator").stdout)
            [worker] = sql.execute(
                "SELECT pid FROM workers WHERE account_id = %s", [account]
            ).fetchall()
            assert alive(worker["pid"])

            stop = ctl("stop", "all")
            assert stop.returncode == 0, stop.stdout + stop.stderr
            assert "mailer-orchestrator: stopped" in stop.stdout
            assert "mailer-web: stopped" in stop.stdout
            shutdown = ctl("shutdown")
            assert shutdown.returncode == 0, shutdown.stdout + shutdown.stderr
            assert supervisord.wait(timeout=20) == 0
        except BaseException:
            for name in ("supervisord.log", "orchestrator.log"):
                path = checkout / ".mailer" / name
                print(f"--- {name} ---\n{path.read_text() if path.exists() else '(none)'}")
            raise
        finally:
            if supervisord.poll() is None:
                supervisord.send_signal(signal.SIGTERM)
                try:
                    supervisord.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    supervisord.kill()
                    supervisord.wait()
            if orchestrator_pid is not None and alive(orchestrator_pid):
                os.killpg(orchestrator_pid, signal.SIGKILL)

    log = (checkout / ".mailer" / "supervisord.log").read_text()
    assert "stopped: mailer-orchestrator (exit status 0)" in log
    assert "stopped: mailer-web (exit status 0)" in log
    assert "SIGKILL" not in log
    orchestrator_log = (checkout / ".mailer" / "orchestrator.log").read_text()
    assert "orchestrator stopped" in orchestrator_log
    assert (
        f"worker for account {account} (pid {worker['pid']}) stopped with exit code 0"
        in orchestrator_log
    )
    assert not alive(orchestrator_pid) and not alive(worker["pid"])
    assert sql.execute("SELECT count(*) AS n FROM workers").fetchone()["n"] == 0
    assert statuses(sql) == {"sent": 5}
    assert len(smtp.received) == 5
