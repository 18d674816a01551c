"""The orchestrator's companion process (the bounce reader's keeper), with real processes."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from orchestrator.companion import Companion
from tests.support.mailer_env import wait_until


def companion(script: str, log: Path, patience: float = 5.0) -> Companion:
    argv = [sys.executable, "-c", script, str(log)]
    return Companion("test companion", argv, lambda: dict(os.environ), patience=patience,
                     clock=time.monotonic)  # fmt: skip


def starts(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


async def test_an_exited_companion_is_restarted_until_stopped(tmp_path: Path) -> None:
    log = tmp_path / "starts"
    script = "import os, sys; open(sys.argv[1], 'a').write(f'{os.getpid()} '); sys.exit(1)"
    keeper = companion(script, log)
    task = asyncio.create_task(keeper.run())
    await wait_until(lambda: len(starts(log)) >= 2, timeout=10, message="a restart")
    await keeper.stop()
    await asyncio.wait_for(task, timeout=5)
    assert len(set(starts(log))) == len(starts(log)) >= 2


async def test_stop_kills_a_companion_that_ignores_sigterm(tmp_path: Path) -> None:
    log = tmp_path / "starts"
    script = (
        "import os, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "open(sys.argv[1], 'a').write(f'{os.getpid()} '); time.sleep(60)"
    )
    keeper = companion(script, log, patience=0.5)
    task = asyncio.create_task(keeper.run())
    await wait_until(lambda: len(starts(log)) == 1, timeout=10, message="the start")
    started = time.monotonic()
    await keeper.stop()
    await asyncio.wait_for(task, timeout=5)
    assert 0.5 <= time.monotonic() - started < 3
    assert keeper.process is not None and keeper.process.returncode == -9
    assert starts(log) == starts(log)[:1]
