"""The chaos SMTP servers: one aiosmtpd server per account, each in its own process.

They are the ground truth of the run. Every message whose final "." was fully received
is written to the server's record file (JSON lines) at once — Message-ID, envelope, when
its MAIL FROM arrived and when its data ended — and a second line when the server
acknowledged it with 250. A message the server drops the line on, or holds while its
worker is killed, is still a delivery: the recipient has it.

The harness scripts misbehaviour through the process's stdin, one JSON command a line
(see :class:`Behaviour`); the server prints ``held <Message-ID>`` when it starts holding
a reply, so the harness can kill the sender during the hold.

Run as ``python -m chaos.smtp_servers --name NAME --port PORT --record FILE``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import threading
import time
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any, TextIO

from aiosmtpd.smtp import SMTP, Envelope, Session

from bench.env import free_port, start_server_process
from mailer.sink import SMTPServerThread
from tests.support.smtp_server import DATA_SIZE_LIMIT, _answer, _drop


class Behaviour:
    """What the server does now, changed by commands (thread-safe):

    - ``{"op": "normal"}``: forget every script; ``{"op": "clear", "which": op}``: one;
    - ``{"op": "drop_after_data", "times": n}``: receive the data, then abort the line;
    - ``{"op": "reset", "times": n}``: abort the line at RCPT TO;
    - ``{"op": "slow_reply", "times": n, "seconds": s}``: wait before answering the data;
    - ``{"op": "hold", "seconds": s}``: like slow_reply once, announced on stdout;
    - ``{"op": "slow_greeting", "seconds": s}``: greet 10-30 ms late for ``s`` seconds;
    - ``{"op": "refuse", "code": 421|451, "seconds": s}``: 421 and hang up at MAIL FROM,
      or 451 at RCPT TO, for ``s`` seconds.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._until: dict[str, float] = {}
        self._values: dict[str, Any] = {}

    def apply(self, command: dict[str, Any]) -> None:
        op = command["op"]
        with self._lock:
            if op == "normal":
                self._counts.clear()
                self._until.clear()
            elif op == "clear":
                self._counts.pop(command["which"], None)
                self._until.pop(command["which"], None)
            elif "times" in command or op == "hold":
                self._counts[op] = self._counts.get(op, 0) + int(command.get("times", 1))
            else:
                self._until[op] = time.time() + float(command["seconds"])
            self._values[op] = command

    def take(self, op: str) -> dict[str, Any] | None:
        """The command of ``op`` if it applies now (using one of its ``times``)."""
        with self._lock:
            if self._counts.get(op, 0) > 0:
                self._counts[op] -= 1
                return self._values[op]
            if self._until.get(op, 0.0) > time.time():
                return self._values[op]
        return None


class Recorder:
    """Appends delivery lines to the record file, flushed at once."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self._file = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()
        self._count = 0

    def data(self, session: Session, envelope: Envelope) -> int:
        """Record a fully received message; return its number for :meth:`ack`."""
        headers = BytesHeaderParser(policy=default_policy).parsebytes(
            bytes(envelope.original_content or b"")
        )
        with self._lock:
            self._count += 1
            number = self._count
        self._write(
            {
                "event": "data",
                "n": number,
                "server": self.name,
                "message_id": str(headers.get("Message-ID", "")).strip(),
                "mail_from": envelope.mail_from or "",
                "rcpt_tos": list(envelope.rcpt_tos),
                "mail_at": getattr(envelope, "chaos_mail_at", 0.0),
                "data_end_at": time.time(),
                "connection": f"{session.peer[1]}" if session.peer else "",
            }
        )
        return number

    def ack(self, number: int) -> None:
        self._write({"event": "ack", "n": number, "server": self.name, "at": time.time()})

    def _write(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()

    def close(self) -> None:
        self._file.close()


class ChaosHandler:
    """aiosmtpd hooks: record MAIL FROM's arrival, apply the behaviour, record data."""

    def __init__(self, behaviour: Behaviour, recorder: Recorder, out: TextIO) -> None:
        self.behaviour = behaviour
        self.recorder = recorder
        self.out = out

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        envelope.chaos_mail_at = time.time()  # type: ignore[attr-defined]
        refuse = self.behaviour.take("refuse")
        if refuse is not None and int(refuse["code"]) == 421:
            return await _answer(server, "421 4.3.2 Service shutting down, try later")
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.behaviour.take("reset"):
            _drop(server)
        refuse = self.behaviour.take("refuse")
        if refuse is not None and int(refuse["code"]) == 451:
            return "451 4.7.1 Too many messages, slow down"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        number = self.recorder.data(session, envelope)
        if self.behaviour.take("drop_after_data"):
            _drop(server)
        hold = self.behaviour.take("hold")
        if hold is not None:
            self.out.write(f"held {number}\n")
            self.out.flush()
            await asyncio.sleep(float(hold["seconds"]))
        slow = self.behaviour.take("slow_reply")
        if slow is not None:
            await asyncio.sleep(float(slow["seconds"]))
        self.recorder.ack(number)
        return "250 2.0.0 OK queued"


class SlowGreetingSMTP(SMTP):
    """An SMTP session that greets 10-30 ms late while its behaviour says so."""

    behaviour: Behaviour

    async def _handle_client(self) -> None:
        if self.behaviour.take("slow_greeting"):
            await asyncio.sleep(random.uniform(0.010, 0.030))
        await super()._handle_client()


class ChaosServerThread(SMTPServerThread):
    """:class:`SMTPServerThread` whose sessions can greet slowly."""

    def __init__(self, handler: ChaosHandler, port: int) -> None:
        super().__init__(handler, "127.0.0.1", port, data_size_limit=DATA_SIZE_LIMIT)

    def _factory(self) -> SMTP:
        with self._lock:
            self._connections += 1
        smtp = SlowGreetingSMTP(self.handler, loop=self._loop, **self._smtp_kwargs)
        smtp.behaviour = self.handler.behaviour
        self._protocols.add(smtp)
        return smtp


def serve(name: str, port: int, record: Path) -> None:
    """Serve until stdin closes, applying each JSON line of stdin as a command."""
    behaviour = Behaviour()
    recorder = Recorder(name, record)
    thread = ChaosServerThread(ChaosHandler(behaviour, recorder, sys.stdout), port)
    thread.start()
    print(f"listening {thread.port}", flush=True)
    try:
        for line in sys.stdin:
            if line.strip():
                behaviour.apply(json.loads(line))
    finally:
        thread.stop()
        recorder.close()


class SMTPServerProcess:
    """Parent side: one chaos server process for one account."""

    def __init__(self, name: str, record: Path) -> None:
        self.name = name
        self.host = "127.0.0.1"
        self.port = free_port()
        self.record = record
        argv = [sys.executable, "-m", "chaos.smtp_servers", "--name", name]
        argv += ["--port", str(self.port), "--record", str(record)]
        self.proc = start_server_process(argv, f"SMTP server {name}", stdin=subprocess.PIPE)
        self._held = threading.Semaphore(0)
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("held"):
                self._held.release()

    def command(self, op: str, **params: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **params}) + "\n")
        self.proc.stdin.flush()

    def hold_next(self, seconds: float, timeout: float) -> bool:
        """Hold the reply to the next message for ``seconds``; True once one is being
        held, False (and the hold cancelled) if none arrived within ``timeout``."""
        while self._held.acquire(blocking=False):
            pass
        self.command("hold", seconds=seconds)
        if self._held.acquire(timeout=timeout):
            return True
        self.command("clear", which="hold")
        return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m chaos.smtp_servers")
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record", type=Path, required=True)
    args = parser.parse_args(argv)
    serve(args.name, args.port, args.record)


if __name__ == "__main__":
    main()
