"""Tests for ``mailer.sink``, the local SMTP capture server, with real aiosmtplib clients."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path

import aiosmtplib
import pytest

from mailer.sink import SinkServer, start_sink, summary_line

REPO_ROOT = Path(__file__).resolve().parents[2]
CLIENT_TIMEOUT = 5.0
SUMMARY = re.compile(
    r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  a@example\.com -> b@example\.com  "Héllo"  \d+ bytes$'
)


def make_message(subject: str = "Héllo", body: str = "Hi there.\n") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "a@example.com"
    message["To"] = "b@example.com"
    message["Subject"] = subject
    message.set_content(body)
    return message


async def send(sink: SinkServer, message: EmailMessage | bytes) -> None:
    await aiosmtplib.send(
        message,
        sender="a@example.com",
        recipients=["b@example.com"],
        hostname=sink.host,
        port=sink.port,
        timeout=CLIENT_TIMEOUT,
    )


@pytest.fixture
def out() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def store_sink(tmp_path: Path, out: io.StringIO) -> Iterator[SinkServer]:
    with start_sink(port=0, directory=tmp_path / "mail", out=out) as sink:
        yield sink


async def test_store_mode_writes_parseable_eml(
    store_sink: SinkServer, tmp_path: Path, out: io.StringIO
) -> None:
    await send(store_sink, make_message())
    [path] = (tmp_path / "mail").iterdir()
    assert re.fullmatch(r"\d{8}T\d{6}\.\d{6}Z-000001\.eml", path.name)
    parsed = BytesParser(policy=default_policy).parsebytes(path.read_bytes())
    assert parsed["Subject"] == "Héllo"
    assert parsed.get_content().splitlines() == ["Hi there."]
    assert store_sink.count == 1
    assert SUMMARY.match(out.getvalue().rstrip("\n"))
    assert out.getvalue().endswith(f"{path.stat().st_size} bytes\n")


async def test_store_mode_keeps_exact_bytes(store_sink: SinkServer, tmp_path: Path) -> None:
    raw = b"Subject: dots\r\n\r\n.leading dot\r\n..two\r\nend\r\n"
    await send(store_sink, raw)
    [path] = (tmp_path / "mail").iterdir()
    assert path.read_bytes() == raw


async def test_store_mode_numbers_files_and_leaves_no_temp_files(
    store_sink: SinkServer, tmp_path: Path, out: io.StringIO
) -> None:
    for _ in range(3):
        await send(store_sink, make_message())
    names = sorted(p.name for p in (tmp_path / "mail").iterdir())
    assert [name[-10:] for name in names] == ["000001.eml", "000002.eml", "000003.eml"]
    assert len(out.getvalue().splitlines()) == 3


async def test_quiet_store_mode_prints_nothing(tmp_path: Path, out: io.StringIO) -> None:
    with start_sink(port=0, directory=tmp_path, quiet=True, out=out) as sink:
        await send(sink, make_message())
    assert out.getvalue() == ""
    assert len(list(tmp_path.glob("*.eml"))) == 1


async def test_discard_mode_counts_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with start_sink(port=0, directory=tmp_path, discard=True) as sink:
        client = aiosmtplib.SMTP(hostname=sink.host, port=sink.port, timeout=CLIENT_TIMEOUT)
        async with client:
            for _ in range(50):
                await client.sendmail(
                    "a@example.com", ["b@example.com"], b"Subject: x\r\n\r\nx\r\n"
                )
        assert sink.count == 50
        assert sink.connections == 1
    assert list(tmp_path.iterdir()) == []
    assert capsys.readouterr().out == ""


async def test_accepts_large_messages(tmp_path: Path) -> None:
    with start_sink(port=0, discard=True) as sink:
        client = aiosmtplib.SMTP(hostname=sink.host, port=sink.port, timeout=CLIENT_TIMEOUT)
        async with client:
            await client.ehlo()
            assert int(client.esmtp_extensions["size"]) >= 30 * 1024 * 1024
            assert "auth" not in client.esmtp_extensions
            assert "starttls" not in client.esmtp_extensions
            big = make_message().as_bytes() + (b"y" * 76 + b"\r\n") * 30_000
            await client.sendmail("a@example.com", ["b@example.com"], big)
        assert sink.count == 1


async def test_port_zero_binds_distinct_free_ports() -> None:
    with start_sink(port=0, discard=True) as first, start_sink(port=0, discard=True) as second:
        assert first.port != 0
        assert first.port != second.port
        await send(second, make_message())
        assert (first.count, second.count) == (0, 1)


async def test_stop_is_idempotent_and_frees_the_port() -> None:
    sink = start_sink(port=0, discard=True)
    sink.stop()
    sink.stop()
    with pytest.raises(aiosmtplib.SMTPConnectError):
        await send(sink, make_message())


def test_busy_port_raises_oserror() -> None:
    with start_sink(port=0, discard=True) as sink, pytest.raises(OSError):
        start_sink(port=sink.port, discard=True)


def test_summary_line_formats() -> None:
    when = datetime(2026, 11, 23, 14, 0, 0, tzinfo=UTC)
    data = b"Subject: =?utf-8?q?caf=C3=A9?=\r\n  folded\r\n\r\nbody\r\n"
    line = summary_line("s@x", ["r@y", "t@z"], data, when)
    assert line == f'2026-11-23T14:00:00Z  s@x -> r@y, t@z  "café folded"  {len(data)} bytes'
    assert summary_line("s@x", ["r@y"], b"\r\nno headers\r\n", when).endswith('""  14 bytes')


RUN_SINK = (
    "import pathlib, sys; from mailer.sink import run_sink; "
    "run_sink('127.0.0.1', 0, pathlib.Path(sys.argv[1]), False, False)"
)
LISTENING = re.compile(r"mailer sink listening on 127\.0\.0\.1:(\d+), storing to (.+)\n")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_run_sink_until_signal(tmp_path: Path, signum: signal.Signals) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-c", RUN_SINK, str(tmp_path)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as process:
        try:
            assert process.stdout is not None
            first = process.stdout.readline()
            match = LISTENING.fullmatch(first)
            assert match and match[2] == str(tmp_path), first
            await aiosmtplib.send(
                make_message(),
                sender="a@example.com",
                recipients=["b@example.com"],
                port=int(match[1]),
                timeout=CLIENT_TIMEOUT,
            )
            assert SUMMARY.match(process.stdout.readline().rstrip("\n"))
            process.send_signal(signum)
            rest, _ = process.communicate(timeout=CLIENT_TIMEOUT)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 0
    assert rest == "mailer sink stopped after 1 messages\n"
    assert len(list(tmp_path.glob("*.eml"))) == 1
