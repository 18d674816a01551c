"""Is a TCP port free to listen on, and if not, who holds it: checked before a command
starts anything (``mailer sink``, ``mailer web``, ``mailer demo``), so a busy port is one
line naming the port and, when the system lets us see it, the program holding it.
"""

from __future__ import annotations

import errno
import socket


def port_in_use(host: str, port: int) -> str | None:
    """None when ``host:port`` can be listened on; else why not, in one line."""
    if port == 0:
        return None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is already in use{holder(port)}"
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


def holder(port: int) -> str:
    """`` by NAME (pid N)`` for the process listening on ``port``, when visible; else ""."""
    import psutil

    try:
        connections = psutil.net_connections(kind="inet")
    except (psutil.Error, OSError):
        return ""
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            if conn.pid is None:
                return ""
            try:
                process = psutil.Process(conn.pid)
                command = " ".join(process.cmdline()[:3]) or process.name()
            except psutil.Error:
                return f" by pid {conn.pid}"
            return f" by {command} (pid {conn.pid})"
    return ""
