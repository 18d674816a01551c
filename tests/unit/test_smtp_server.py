"""Tests for the scripted SMTP test server, driven by real aiosmtplib clients."""

from __future__ import annotations

import time
from collections.abc import Iterator

import aiosmtplib
import pytest

from tests.support.smtp_server import ScriptedSMTPServer

MESSAGE = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: Hello\r\n\r\nBody\r\n"
SERVER_TIMEOUT = 5.0


@pytest.fixture
def server() -> Iterator[ScriptedSMTPServer]:
    with ScriptedSMTPServer() as smtp:
        yield smtp


async def send(
    server: ScriptedSMTPServer, recipients: list[str] | None = None, **kwargs: object
) -> tuple[dict[str, aiosmtplib.SMTPResponse], str]:
    """Send MESSAGE on a fresh connection."""
    return await aiosmtplib.send(
        MESSAGE,
        sender="a@example.com",
        recipients=recipients or ["b@example.com"],
        hostname=server.host,
        port=server.port,
        timeout=SERVER_TIMEOUT,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_accepts_and_records_message(server: ScriptedSMTPServer) -> None:
    before = time.time()
    await send(server)
    [received] = server.wait_for(1)
    assert received.mail_from == "a@example.com"
    assert received.rcpt_tos == ["b@example.com"]
    assert received.data == MESSAGE
    assert received.message["Subject"] == "Hello"
    assert before <= received.received_at <= time.time()
    assert server.connections == 1


async def test_reply_rcpt_refuses_recipient_once(server: ScriptedSMTPServer) -> None:
    server.reply_rcpt("550 5.1.1 <b@example.com>: Recipient address rejected: User unknown")
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as caught:
        await send(server)
    assert caught.value.recipients[0].code == 550
    assert "User unknown" in caught.value.recipients[0].message
    assert server.received == []
    assert server.pending_rules == 0
    await send(server)
    assert len(server.wait_for(1)) == 1


async def test_reply_rcpt_for_one_address_only(server: ScriptedSMTPServer) -> None:
    server.reply_rcpt("550 5.1.1 User unknown", address="<Bad@Example.com>", times=None)
    errors, _ = await send(server, ["good@example.com", "bad@example.com"])
    assert errors["bad@example.com"].code == 550
    [received] = server.wait_for(1)
    assert received.rcpt_tos == ["good@example.com"]


async def test_reply_rcpt_times_limit(server: ScriptedSMTPServer) -> None:
    server.reply_rcpt("451 4.7.1 Rate limit exceeded, try again later", times=2)
    for _ in range(2):
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as caught:
            await send(server)
        assert caught.value.recipients[0].code == 451
    await send(server)
    assert len(server.wait_for(1)) == 1


async def test_times_none_is_forever_until_reset(server: ScriptedSMTPServer) -> None:
    server.reply_data("452 4.2.2 Mailbox full", times=None)
    for _ in range(3):
        with pytest.raises(aiosmtplib.SMTPDataError) as caught:
            await send(server)
        assert caught.value.code == 452
    server.reset_script()
    await send(server)
    assert len(server.wait_for(1)) == 1


async def test_rules_of_one_kind_apply_in_order(server: ScriptedSMTPServer) -> None:
    server.reply_rcpt("451 4.7.1 first")
    server.reply_rcpt("550 5.1.1 second")
    codes = []
    for _ in range(2):
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as caught:
            await send(server)
        codes.append(caught.value.recipients[0].code)
    assert codes == [451, 550]


async def test_reply_421_closes_connection(server: ScriptedSMTPServer) -> None:
    server.reply_rcpt("421 4.7.0 Too many messages, closing connection")
    client = aiosmtplib.SMTP(hostname=server.host, port=server.port, timeout=SERVER_TIMEOUT)
    await client.connect()
    try:
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as caught:
            await client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
        assert caught.value.recipients[0].code == 421
        assert not client.is_connected
    finally:
        client.close()
    await send(server)
    server.wait_for(1)
    assert server.connections == 2


async def test_reply_data_421_closes_connection(server: ScriptedSMTPServer) -> None:
    server.reply_data("421 4.7.0 Too many messages, closing connection")
    client = aiosmtplib.SMTP(hostname=server.host, port=server.port, timeout=SERVER_TIMEOUT)
    await client.connect()
    try:
        with pytest.raises(aiosmtplib.SMTPDataError) as caught:
            await client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
        assert caught.value.code == 421
        with pytest.raises(aiosmtplib.SMTPServerDisconnected):
            await client.noop()
    finally:
        client.close()
    assert server.received == []


async def test_reply_data_matches_address(server: ScriptedSMTPServer) -> None:
    server.reply_data("452 4.2.2 Mailbox full", address="full@example.com")
    await send(server, ["other@example.com"])
    with pytest.raises(aiosmtplib.SMTPDataError) as caught:
        await send(server, ["other@example.com", "full@example.com"])
    assert caught.value.code == 452
    assert "Mailbox full" in caught.value.message
    [received] = server.wait_for(1)
    assert received.rcpt_tos == ["other@example.com"]


@pytest.mark.parametrize("stage", ["mail", "rcpt", "data"])
async def test_drop_connection(server: ScriptedSMTPServer, stage: str) -> None:
    server.drop_connection(stage=stage)  # type: ignore[arg-type]
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await send(server)
    assert server.received == []
    await send(server)
    assert len(server.wait_for(1)) == 1


async def test_delay_data(server: ScriptedSMTPServer) -> None:
    server.delay_data(0.4)
    started = time.monotonic()
    await send(server)
    assert time.monotonic() - started >= 0.4
    started = time.monotonic()
    await send(server)  # the rule was used up
    assert time.monotonic() - started < 0.4


async def test_one_connection_reused_counts_once(server: ScriptedSMTPServer) -> None:
    client = aiosmtplib.SMTP(hostname=server.host, port=server.port, timeout=SERVER_TIMEOUT)
    async with client:
        for _ in range(3):
            await client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    assert len(server.wait_for(3)) == 3
    assert server.connections == 1


async def test_wait_for_async(server: ScriptedSMTPServer) -> None:
    await send(server)
    assert len(await server.wait_for_async(1)) == 1
    with pytest.raises(AssertionError, match="expected at least 2 messages"):
        await server.wait_for_async(2, timeout=0.05)


def test_wait_for_times_out_clearly(server: ScriptedSMTPServer) -> None:
    with pytest.raises(AssertionError, match=r"expected at least 1 messages within 0\.05s, got 0"):
        server.wait_for(1, timeout=0.05)


def test_rejects_bad_script(server: ScriptedSMTPServer) -> None:
    with pytest.raises(ValueError):
        server.reply_rcpt("nope")
    with pytest.raises(ValueError):
        server.drop_connection(stage="quit")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        server.reply_data("452 4.2.2 Mailbox full", times=0)


async def test_stopped_server_refuses_connections() -> None:
    with ScriptedSMTPServer() as smtp:
        port = smtp.port
    with pytest.raises(aiosmtplib.SMTPConnectError):
        await aiosmtplib.send(
            MESSAGE, sender="a@example.com", recipients=["b@example.com"], port=port
        )


async def test_stop_closes_open_connections() -> None:
    smtp = ScriptedSMTPServer().start()
    client = aiosmtplib.SMTP(hostname=smtp.host, port=smtp.port, timeout=SERVER_TIMEOUT)
    await client.connect()
    try:
        smtp.stop()
        with pytest.raises(aiosmtplib.SMTPServerDisconnected):
            await client.noop()
    finally:
        client.close()
        smtp.stop()


class TestAuth:
    """The server with ``auth=(user, password)``."""

    @pytest.fixture
    def server(self) -> Iterator[ScriptedSMTPServer]:
        with ScriptedSMTPServer(auth=("user", "secret")) as smtp:
            yield smtp

    async def test_good_credentials(self, server: ScriptedSMTPServer) -> None:
        await send(server, username="user", password="secret")
        assert len(server.wait_for(1)) == 1

    @pytest.mark.parametrize("method", ["plain", "login"])
    async def test_both_mechanisms(self, server: ScriptedSMTPServer, method: str) -> None:
        client = aiosmtplib.SMTP(hostname=server.host, port=server.port, timeout=SERVER_TIMEOUT)
        async with client:
            assert client.supports_extension("auth")
            login = client.auth_plain if method == "plain" else client.auth_login
            response = await login("user", "secret")
            assert response.code == 235

    async def test_wrong_password_is_535(self, server: ScriptedSMTPServer) -> None:
        with pytest.raises(aiosmtplib.SMTPAuthenticationError) as caught:
            await send(server, username="user", password="wrong")
        assert caught.value.code == 535
        assert server.received == []

    async def test_mail_without_auth_is_530(self, server: ScriptedSMTPServer) -> None:
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as caught:
            await send(server)
        assert caught.value.code == 530
