"""A busy port is named, with the program holding it when the system shows it."""

from __future__ import annotations

import os
import socket

from mailer.ports import port_in_use


def test_a_free_port_and_port_zero_are_fine():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    assert port_in_use("127.0.0.1", free) is None
    assert port_in_use("127.0.0.1", 0) is None


def test_a_busy_port_names_its_holder():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        problem = port_in_use("127.0.0.1", port)
    assert problem is not None
    assert problem.startswith(f"port {port} on 127.0.0.1 is already in use")
    assert problem.endswith(f"(pid {os.getpid()})")  # psutil sees this process's own sockets


def test_an_address_not_of_this_host_says_so():
    assert "cannot listen on 192.0.2.1:" in str(port_in_use("192.0.2.1", 4000))
