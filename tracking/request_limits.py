"""Request bodies bounded whether or not they declare their length.

Werkzeug enforces ``max_content_length`` on a body sent without ``Content-Length`` (a
chunked upload the WSGI server terminates) by reading up to the limit and stopping there:
a longer body is cut short at the limit and the cut-off part is acted on. Here such a body
is read up to one byte past the limit, and that byte is a 413, as a declared length over
the limit already is."""

from __future__ import annotations

from typing import IO

import flask
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream


class _MaxLengthStream(LimitedStream):
    """``stream`` read to its end, 413 (RequestEntityTooLarge) once it holds more than
    ``max_length`` bytes."""

    def __init__(self, stream: IO[bytes], max_length: int) -> None:
        super().__init__(stream, max_length + 1, is_max=True)
        self._max_length = max_length

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        count = super().readinto(b) or 0
        if self.tell() > self._max_length:  # the stream's own count of bytes read
            raise RequestEntityTooLarge()
        return count


class BoundedRequest(flask.Request):
    """Flask's request, whose undeclared-length body over ``max_content_length`` is a 413
    instead of a body cut short (see module docstring)."""

    @cached_property
    def stream(self) -> IO[bytes]:
        limit = self.max_content_length
        if (
            not self.shallow
            and limit is not None
            and self.content_length is None
            and self.environ.get("wsgi.input_terminated")
        ):
            return _MaxLengthStream(self.environ["wsgi.input"], limit)
        return super().stream
