"""The app under gunicorn in a child process, for the tests that need real HTTP across
worker processes and for the benchmark: started on a free local port, waited for until
``/healthz`` answers, stopped with SIGTERM (then SIGKILL) afterwards."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def gunicorn_child(
    env: Mapping[str, str],
    *,
    workers: int = 2,
    threads: int = 4,
    port: int | None = None,
    startup_seconds: float = 30,
) -> Iterator[str]:
    """``gunicorn tracking.wsgi:app`` with ``env`` as its whole environment on ``port``
    (default: a free one); yields its base URL (``http://127.0.0.1:PORT``)."""
    port = port or free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}"]
    command += ["--workers", str(workers), "--threads", str(threads), "--graceful-timeout", "5"]
    proc = subprocess.Popen(
        [*command, "tracking.wsgi:app"],
        cwd=ROOT,
        env=dict(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_healthy(base, proc, startup_seconds)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_healthy(base: str, proc: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("gunicorn exited")
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("gunicorn did not come up")
