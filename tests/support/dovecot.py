"""A private Dovecot IMAP server for tests: temp dir, passwd-file users, maildir mail.

It listens on 127.0.0.1 on a free port with plaintext logins allowed (loopback only, no
TLS) and is stopped after the test. Tests that need it skip, naming the Debian package,
where the ``dovecot`` binary is missing (``apt-get install dovecot-imapd``).
"""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

USER, PASSWORD = "bounces@shop.example", "imap-secret"
CANDIDATES = ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot")


@dataclass(frozen=True)
class Dovecot:
    """A running server and its one user."""

    host: str
    port: int
    user: str
    password: str
    log: Path

    def connect(self) -> imaplib.IMAP4:
        conn = imaplib.IMAP4(self.host, self.port, timeout=10)
        conn.login(self.user, self.password)
        return conn

    def append(self, raw: bytes, folder: str = "INBOX") -> None:
        """IMAP APPEND one message (CRLF line ends, as on the wire)."""
        conn = self.connect()
        try:
            data = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            typ, detail = conn.append(folder, None, None, data)
            assert typ == "OK", detail
        finally:
            conn.logout()

    def messages(self, folder: str = "INBOX") -> dict[int, tuple[set[str], bytes]]:
        """UID -> (flags, Message-ID header line) of every message in ``folder``."""
        conn = self.connect()
        try:
            conn.select(folder, readonly=True)
            typ, data = conn.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            assert typ == "OK", data
            found = {}
            for item in data:
                if isinstance(item, tuple):
                    head = item[0].decode()
                    uid = int(head.split("UID ")[1].split()[0])
                    flags = set(head.split("FLAGS (")[1].split(")")[0].split())
                    found[uid] = (flags, item[1].strip())
            return found
        finally:
            conn.logout()


def dovecot_binary() -> str:
    found = shutil.which("dovecot") or next((c for c in CANDIDATES if os.path.exists(c)), None)
    if found is None:
        pytest.skip("Dovecot is not installed: apt-get install dovecot-imapd (Debian package)")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _mail_owner() -> pwd.struct_passwd:
    """Whom mail belongs to: Dovecot refuses mail access as root, so root uses nobody."""
    return pwd.getpwnam("nobody") if os.getuid() == 0 else pwd.getpwuid(os.getuid())


def write_config(root: Path, port: int) -> Path:
    owner = _mail_owner()
    me = pwd.getpwuid(os.getuid()).pw_name
    mail = root / "mail"
    mail.mkdir()
    os.chown(mail, owner.pw_uid, owner.pw_gid)
    (root / "passwd").write_text(
        f"{USER}:{{PLAIN}}{PASSWORD}:{owner.pw_uid}:{owner.pw_gid}::{mail}/home::\n"
    )
    (root / "passwd").chmod(0o644)
    internal = "" if os.getuid() == 0 else f"default_internal_user = {me}\n"
    login = "" if os.getuid() == 0 else f"default_login_user = {me}\n"
    conf = root / "dovecot.conf"
    conf.write_text(
        f"""protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
{internal}{login}mail_location = maildir:{mail}/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/passwd
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"""
    )
    return conf


def wait_ready(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dovecot exited: {log.read_text() if log.exists() else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                if sock.recv(100).startswith(b"* OK"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("dovecot did not start listening")


def run_dovecot() -> Iterator[Dovecot]:
    """Start Dovecot in a fresh temp dir; yield it; stop it and remove the dir. The dir
    is traversable by all (not a 0700 pytest tmp_path): Dovecot's auth process runs as
    the ``dovecot`` user and must read the passwd file."""
    binary = dovecot_binary()
    root = Path(tempfile.mkdtemp(prefix="mailer-dovecot-"))
    root.chmod(0o711)
    port = free_port()
    conf = write_config(root, port)
    log = root / "dovecot.log"
    process = subprocess.Popen([binary, "-F", "-c", str(conf)], stderr=subprocess.PIPE)
    try:
        wait_ready(port, process, log)
        yield Dovecot("127.0.0.1", port, USER, PASSWORD, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()
        shutil.rmtree(root, ignore_errors=True)
