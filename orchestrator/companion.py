"""A companion process the orchestrator keeps running beside the workers (the bounce
reader, ``mailer bounces run``; the webhook sender, ``mailer webhooks run``; the
recurring-send scheduler, ``mailer recurring run``): started with
the orchestrator, restarted with capped backoff whenever it exits, SIGTERMed (then
SIGKILLed after the grace period) on stop.

Unlike a worker it belongs to no account, so none of the account policy applies: its exit
never suspends anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Sequence

from orchestrator.forkserver import die_with_parent
from orchestrator.policy import describe_exit, restart_delay

log = logging.getLogger("mailer.orchestrator")

#: A companion that ran this long before exiting starts its backoff afresh.
HEALTHY_SECONDS = 60.0


def bounce_reader_command() -> list[str]:
    """The command line of the bounce reader."""
    return [sys.executable, "-m", "mailer", "bounces", "run"]


def webhook_sender_command() -> list[str]:
    """The command line of the webhook sender."""
    return [sys.executable, "-m", "mailer", "webhooks", "run"]


def recurring_scheduler_command() -> list[str]:
    """The command line of the recurring-send scheduler."""
    return [sys.executable, "-m", "mailer", "recurring", "run"]


class Companion:
    """One kept-alive child process; ``await run()`` until :meth:`stop`."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Callable[[], dict[str, str]],
        *,
        patience: float,
        clock: Callable[[], float],
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.patience = patience
        self.clock = clock
        self.process: asyncio.subprocess.Process | None = None
        self._stopping = asyncio.Event()
        self._failures = 0

    async def run(self) -> None:
        """Start the process, and again after each exit, until :meth:`stop`."""
        while not self._stopping.is_set():
            started = self.clock()
            returncode = await self._run_once()
            if self._stopping.is_set():
                return
            ran = self.clock() - started
            self._failures = 1 if ran >= HEALTHY_SECONDS else self._failures + 1
            delay = restart_delay(self._failures)
            log.warning(
                "%s exited (%s) after %.0fs; restarting in %.0fs",
                self.name,
                describe_exit(returncode) if returncode is not None else "could not start",
                ran,
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)

    async def _run_once(self) -> int | None:
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv,
                env=self.env(),
                stdin=asyncio.subprocess.DEVNULL,
                # a kill -9 of the orchestrator must not leave a companion behind
                preexec_fn=die_with_parent,
            )
        except OSError as exc:
            log.error("cannot start the %s: %s", self.name, exc)
            return None
        log.info("started the %s (pid %s)", self.name, self.process.pid)
        return await self.process.wait()

    async def stop(self) -> None:
        """SIGTERM the process; SIGKILL it if it outlives ``patience``."""
        self._stopping.set()
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout=self.patience)
        except TimeoutError:
            log.warning("the %s did not stop within %.0fs; killing it", self.name, self.patience)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
