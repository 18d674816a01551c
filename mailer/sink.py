"""Local SMTP capture server behind ``mailer sink``.

The sink accepts every message without authentication or TLS. In store mode each message is
written, byte for byte, to ``<directory>/<UTC timestamp>-<counter>.eml`` and summarised on
stdout; in discard mode (benchmarks) messages are only counted.

:class:`SMTPServerThread` runs any aiosmtpd handler on its own event loop in a background
thread. Unlike aiosmtpd's ``Controller`` it binds port 0 cleanly (the real port is read from
the listening socket), never does a reverse DNS lookup per connection, counts connections,
and closes every client transport on :meth:`SMTPServerThread.stop`.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from aiosmtpd.smtp import SMTP, Envelope, Session

from mailer.config import load_settings

#: Largest message accepted by the sink (SIZE advertised in EHLO), in bytes.
SINK_DATA_SIZE_LIMIT = 64 * 1024 * 1024
#: Name the servers give themselves in the greeting and EHLO (avoids a DNS lookup).
SERVER_HOSTNAME = "mailer-sink.localhost"
#: Seconds :meth:`SMTPServerThread.start` and :meth:`SMTPServerThread.stop` wait at most.
THREAD_TIMEOUT_SECONDS = 10.0


class SMTPServerThread:
    """An aiosmtpd ``SMTP`` server on a private event loop in a daemon thread.

    ``smtp_kwargs`` are passed to every ``smtp_class`` instance (one per connection). After
    :meth:`start`, ``host`` and ``port`` are the bound address (``port=0`` picks a free
    port) and ``connections`` counts accepted TCP connections.
    """

    def __init__(
        self,
        handler: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        smtp_class: type[SMTP] = SMTP,
        **smtp_kwargs: Any,
    ) -> None:
        self.handler = handler
        self.smtp_class = smtp_class
        self.host = host
        self.port = port
        self._smtp_kwargs: dict[str, Any] = {"hostname": SERVER_HOSTNAME, **smtp_kwargs}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._protocols: weakref.WeakSet[SMTP] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._connections = 0

    @property
    def connections(self) -> int:
        """TCP connections accepted since :meth:`start`."""
        with self._lock:
            return self._connections

    @property
    def running(self) -> bool:
        """True between a successful :meth:`start` and :meth:`stop`."""
        return self._thread is not None

    def start(self) -> None:
        """Bind and serve in a background thread; returns once the port is listening.

        Raises OSError if the address cannot be bound (the thread is then cleaned up).
        """
        if self._thread is not None:
            raise RuntimeError("server already started")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=self._run, args=(loop,), name="smtp-server", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            future = asyncio.run_coroutine_threadsafe(self._bind(), loop)
            future.result(THREAD_TIMEOUT_SECONDS)
        except BaseException:
            self._stop_thread()
            raise

    def stop(self) -> None:
        """Close the listener and every client connection, then end the thread (idempotent)."""
        if self._thread is None or self._loop is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        try:
            future.result(THREAD_TIMEOUT_SECONDS)
        finally:
            self._stop_thread()

    def _stop_thread(self) -> None:
        assert self._loop is not None and self._thread is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(THREAD_TIMEOUT_SECONDS)
        self._loop, self._thread, self._server = None, None, None

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def _factory(self) -> SMTP:
        with self._lock:
            self._connections += 1
        smtp = self.smtp_class(self.handler, loop=self._loop, **self._smtp_kwargs)
        self._protocols.add(smtp)
        return smtp

    async def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._factory, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for smtp in list(self._protocols):
            if smtp.transport is not None:
                smtp.transport.abort()
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Let the transports' connection_lost callbacks run so their sockets get closed.
        for _ in range(3):
            await asyncio.sleep(0)


class SinkHandler:
    """aiosmtpd handler that stores (or discards) and counts every message it accepts.

    Store mode (``directory`` set): each message's bytes go atomically to
    ``directory/<UTC timestamp>-<counter>.eml`` and, unless ``quiet``, one summary line is
    printed to ``out`` (default ``sys.stdout``) and flushed. Discard mode (``directory`` is
    None) does no disk or print work. :attr:`count` is safe to read from any thread.
    """

    def __init__(
        self, directory: Path | None = None, *, quiet: bool = False, out: TextIO | None = None
    ) -> None:
        self.directory = directory
        self.quiet = quiet
        self._out = out
        self._lock = threading.Lock()
        self._count = 0
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    @property
    def count(self) -> int:
        """Messages accepted so far."""
        with self._lock:
            return self._count

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Count the message, store and print it in store mode, and answer 250."""
        with self._lock:
            self._count += 1
            number = self._count
        if self.directory is not None:
            data = _content_bytes(envelope)
            now = datetime.now(UTC)
            store_message(self.directory, data, now, number)
            if not self.quiet:
                self._print_summary(envelope, data, now)
        return "250 OK"

    def _print_summary(self, envelope: Envelope, data: bytes, now: datetime) -> None:
        out = self._out if self._out is not None else sys.stdout
        out.write(summary_line(envelope.mail_from or "", envelope.rcpt_tos, data, now) + "\n")
        out.flush()


def _content_bytes(envelope: Envelope) -> bytes:
    """The message exactly as received, after SMTP dot-unstuffing."""
    return bytes(envelope.original_content or b"")


def store_message(directory: Path, data: bytes, when: datetime, number: int) -> Path:
    """Write ``data`` to ``directory/<YYYYmmddTHHMMSS.ffffffZ>-<number:06d>.eml`` atomically
    (temporary dot-file, then rename) and return the final path."""
    name = f"{when.strftime('%Y%m%dT%H%M%S.%fZ')}-{number:06d}.eml"
    final = directory / name
    temp = directory / f".{name}.tmp"
    temp.write_bytes(data)
    temp.replace(final)
    return final


def summary_line(mail_from: str, rcpt_tos: list[str], data: bytes, when: datetime) -> str:
    """``2026-11-23T14:00:00Z  from -> to1, to2  "Subject"  1234 bytes`` (one line)."""
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    recipients = ", ".join(rcpt_tos)
    return f'{stamp}  {mail_from} -> {recipients}  "{_subject(data)}"  {len(data)} bytes'


def _subject(data: bytes) -> str:
    """The decoded Subject header on one line, or "" if absent or unparsable."""
    try:
        headers = BytesHeaderParser(policy=default_policy).parsebytes(data)
        subject = str(headers.get("subject", ""))
    except Exception:
        return ""
    return " ".join(subject.split())


class SinkServer:
    """A running sink: ``host``, ``port`` (the real bound port), ``count``, ``stop()``."""

    def __init__(self, thread: SMTPServerThread, handler: SinkHandler) -> None:
        self._thread = thread
        self.handler = handler

    @property
    def host(self) -> str:
        """The address the sink listens on."""
        return self._thread.host

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return self._thread.port

    @property
    def count(self) -> int:
        """Messages accepted so far."""
        return self.handler.count

    @property
    def connections(self) -> int:
        """TCP connections accepted so far."""
        return self._thread.connections

    def stop(self) -> None:
        """Stop listening and close all connections (idempotent)."""
        self._thread.stop()

    def __enter__(self) -> SinkServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def default_sink_directory() -> Path:
    """Where store mode writes when no directory is given: ``$MAILER_HOME/sink``."""
    return load_settings().home / "sink"


def start_sink(
    host: str = "127.0.0.1",
    port: int = 1025,
    directory: Path | None = None,
    discard: bool = False,
    quiet: bool = False,
    out: TextIO | None = None,
) -> SinkServer:
    """Start a sink in a background thread and return it once it is listening.

    ``port=0`` picks a free port (read it back from ``.port``). Without ``discard``,
    messages are stored under ``directory`` (default :func:`default_sink_directory`,
    created if missing). Raises OSError if the address cannot be bound.
    """
    if discard:
        handler = SinkHandler(None, quiet=True)
    else:
        handler = SinkHandler(directory or default_sink_directory(), quiet=quiet, out=out)
    thread = SMTPServerThread(
        handler,
        host,
        port,
        data_size_limit=SINK_DATA_SIZE_LIMIT,
        enable_SMTPUTF8=True,
    )
    thread.start()
    return SinkServer(thread, handler)


def run_sink(
    host: str = "127.0.0.1",
    port: int = 1025,
    directory: Path | None = None,
    discard: bool = False,
    quiet: bool = False,
) -> None:
    """Run a sink in the foreground until SIGINT or SIGTERM, then stop it cleanly.

    Must be called from the main thread (it installs signal handlers, restored on return).
    """
    stop_requested = threading.Event()
    previous = _install_signal_handlers(lambda: stop_requested.set())
    try:
        sink = start_sink(host, port, directory, discard, quiet)
        try:
            print(_listening_line(sink, discard), flush=True)
            while not stop_requested.wait(0.5):
                pass
        finally:
            sink.stop()
        print(f"mailer sink stopped after {sink.count} messages", flush=True)
    finally:
        _restore_signal_handlers(previous)


def _listening_line(sink: SinkServer, discard: bool) -> str:
    where = "discarding" if discard else f"storing to {sink.handler.directory}"
    return f"mailer sink listening on {sink.host}:{sink.port}, {where}"


_Handler = Callable[[int, FrameType | None], Any] | int | None


def _install_signal_handlers(callback: Callable[[], None]) -> dict[int, _Handler]:
    """Route SIGINT and SIGTERM to ``callback``; return the handlers they replace."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        callback()

    previous: dict[int, _Handler] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, on_signal)
    return previous


def _restore_signal_handlers(previous: dict[int, _Handler]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, signal.SIG_DFL if handler is None else handler)
