"""One ceiling client process: ``python -m bench.smtp_client HOST PORT COUNT OFFSET``.

It pre-builds COUNT messages (with a worker's own renderer and settings: tracked links,
open pixel, List-Unsubscribe, feedback headers, VERP; so they are the bytes Mailer sends
for the same rows), prints ``ready``, waits for a line on stdin, then sends them all over
one reused aiosmtplib connection and prints ``{"start": t0, "end": t1, "sent": n, "cpu": s,
"bytes": size}`` (``cpu``: its own CPU seconds while sending).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiosmtplib

from bench.content import bench_account, bench_row
from mailer.config import load_settings
from mailer.credentials import secret_key
from mailer.worker import message_renderer


async def send_all(host: str, port: int, messages: list[tuple[str, str, bytes]]) -> int:
    client = aiosmtplib.SMTP(hostname=host, port=port, start_tls=False, use_tls=False, timeout=30)
    await client.connect()
    sent = 0
    for sender, recipient, data in messages:
        await client.sendmail(sender, [recipient], data)
        sent += 1
    await client.quit()
    return sent


def main() -> None:
    host, port, count, offset = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    account = bench_account(f"ceiling{offset}@bench.example")
    settings = load_settings()
    renderer = message_renderer(settings, secret_key(settings))
    messages = []
    for i in range(offset, offset + count):
        msg = renderer.render(bench_row(i, f"<{i}.ceiling@bench.example>"), account)
        messages.append((msg.envelope_from, msg.recipient, msg.data))
    print("ready", flush=True)
    sys.stdin.readline()
    start, cpu = time.time(), time.process_time()
    sent = asyncio.run(send_all(host, port, messages))
    end, cpu = time.time(), time.process_time() - cpu
    print(
        json.dumps(
            {
                "start": start,
                "end": end,
                "sent": sent,
                "cpu": cpu,
                "bytes": len(messages[0][2]) if messages else 0,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
