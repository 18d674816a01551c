"""A tiny authoritative DNS server for tests: TXT records from a dict, over UDP on
127.0.0.1 (a free port), answered in a thread with dnspython's message API.

Names not in ``records`` get NXDOMAIN; ``silent`` names get no answer at all (a timeout).
"""

from __future__ import annotations

import socket
import threading

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


class TxtServer:
    """Use as a context manager; ``nameserver`` is what MAILER_DNS_NAMESERVER takes."""

    def __init__(self, records: dict[str, list[str]], silent: frozenset[str] = frozenset()):
        self.records = {name.lower().rstrip("."): texts for name, texts in records.items()}
        self.silent = silent
        self.queries: list[str] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def nameserver(self) -> str:
        host, port = self._sock.getsockname()
        return f"{host}:{port}"

    def __enter__(self) -> TxtServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                wire, peer = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            reply = self._answer(dns.message.from_wire(wire))
            if reply is not None:
                self._sock.sendto(reply.to_wire(max_size=65535), peer)

    def _answer(self, query: dns.message.Message) -> dns.message.Message | None:
        question = query.question[0]
        name = question.name.to_text().lower().rstrip(".")
        self.queries.append(name)
        if name in self.silent:
            return None
        response = dns.message.make_response(query)
        texts = self.records.get(name)
        if texts is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.TXT and texts:
            quoted = [" ".join(f'"{t[i : i + 255]}"' for i in range(0, len(t), 255)) for t in texts]
            response.answer.append(dns.rrset.from_text(question.name, 300, "IN", "TXT", *quoted))
        return response
