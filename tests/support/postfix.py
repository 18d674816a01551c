"""A real Postfix (Debian's ``postfix`` package) on loopback ports, one smtpd service per
scenario, for the interop suite (tests/integration/test_postfix.py).

:class:`PostfixInstance` writes a private configuration directory (``main.cf``,
``master.cf``, lookup tables), runs ``postfix -c DIR start`` and ``postfix -c DIR stop``
after. Each scenario is an ``inet`` smtpd service on its own 127.0.0.1 port with ``-o``
overrides, the way an operator's relay or a recipient's MX would be configured. Accepted
mail goes to ``default_transport = discard``: nothing leaves the machine. The system's own
Postfix instance (``/etc/postfix``) is neither used nor touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

POSTFIX = shutil.which("postfix") or (
    "/usr/sbin/postfix" if Path("/usr/sbin/postfix").exists() else None
)
SKIP_REASON = (
    "Postfix is not installed: install Debian's `postfix` package "
    "(apt-get install postfix) to run the Postfix interop suite"
)
if POSTFIX is not None and os.geteuid() != 0:
    SKIP_REASON = "the Postfix interop suite starts a private Postfix, which needs root"
    POSTFIX = None

#: Recipients the relay knows (relay_recipient_maps): everyone but ghost@... .
_RECIPIENTS = "!/^ghost@/ OK\n"
#: Per-recipient answers of the access map (check_recipient_access).
_RECIPIENT_ACCESS = """\
blocked@example.org 550 5.7.1 Blocked by local policy
grey@example.org 450 4.2.0 Greylisted, see http://postgrey.example/
full@example.org 552 5.2.2 Mailbox full
"""
#: Senders the relay refuses (check_sender_access), as it answers a login mismatch.
_SENDER_ACCESS = """\
notmine@shop.example 553 5.7.1 not owned by user bob
"""

_MASTER_SERVICES = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostfixInstance:
    """A private Postfix with one smtpd service per scenario (name -> ``-o`` overrides);
    ``port(name)`` is where that scenario listens. Use as a context manager."""

    def __init__(self, directory: Path, scenarios: dict[str, list[str]]) -> None:
        if POSTFIX is None:
            raise RuntimeError(SKIP_REASON)
        self.dir = directory
        self.scenarios = scenarios
        self.ports = {name: free_port() for name in scenarios}
        self.host = "127.0.0.1"

    def port(self, scenario: str) -> int:
        return self.ports[scenario]

    def path(self, name: str) -> Path:
        return self.dir / name

    def log(self) -> str:
        log = self.dir / "maillog"
        return log.read_text(errors="replace") if log.exists() else ""

    def _run(self, *args: str) -> None:
        assert POSTFIX is not None
        done = subprocess.run(
            [POSTFIX, "-c", str(self.dir), *args], capture_output=True, text=True, timeout=60
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"postfix {' '.join(args)} failed ({done.returncode}): {done.stderr}\n"
                f"its log:\n{self.log()[-3000:]}"
            )

    def _write_config(self) -> None:
        d = self.dir
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o755)  # Postfix's daemons read the tables as the postfix user
        (d / "queue").mkdir(exist_ok=True)
        (d / "data").mkdir(exist_ok=True)
        shutil.chown(d / "data", "postfix")
        (d / "recipients").write_text(_RECIPIENTS)
        (d / "recipient_access").write_text(_RECIPIENT_ACCESS)
        (d / "sender_access").write_text(_SENDER_ACCESS)
        (d / "main.cf").write_text(
            f"""\
compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.postfix-test.example
mydomain = postfix-test.example
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains = example.org
relay_recipient_maps = regexp:{d}/recipients
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
default_transport = discard
relay_transport = discard
local_transport = discard
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
biff = no
smtputf8_enable = yes
alias_maps =
alias_database =
"""
        )
        lines = []
        for name, overrides in self.scenarios.items():
            lines.append(f"127.0.0.1:{self.ports[name]} inet n - n - - smtpd")
            lines.append(f"  -o syslog_name=postfix/{name}")
            lines.extend(f"  -o {option.replace('DIR', str(d))}" for option in overrides)
        (d / "master.cf").write_text("\n".join(lines) + "\n" + _MASTER_SERVICES)

    def start(self) -> PostfixInstance:
        self._write_config()
        self._run("start")
        deadline = time.monotonic() + 20
        for port in self.ports.values():
            while True:
                try:
                    socket.create_connection((self.host, port), timeout=1).close()
                    break
                except OSError as exc:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise RuntimeError(
                            f"postfix did not listen on {port}:\n{self.log()}"
                        ) from exc
                    time.sleep(0.1)
        return self

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._run("stop")

    def __enter__(self) -> PostfixInstance:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
