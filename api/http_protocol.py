"""uvicorn's httptools protocol with a bound on the request head, and JSON for its own errors.

httptools (llhttp) keeps every header line it is given and uvicorn imposes no limit, so a
client that never ends its headers grew the process without bound (hostile-input audit: 250 MB
of ``X-A<n>:`` lines accepted, RSS 152 -> 373 MB). Past ``MAX_HEAD_BYTES`` this protocol stops
keeping what arrives, answers ``431`` in the reference's JSON error shape and closes the
connection. Our own URLs and headers are far below the limit; nginx's default is 32 KiB.
What httptools cannot parse at all (a bad Content-Length, Content-Length with
Transfer-Encoding, bytes that are not HTTP) gets a 400 in the same JSON shape, where uvicorn
answers in plain text.
"""

from __future__ import annotations

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 64 * 1024


def _closing_answer(status: str, code: str, message: str) -> bytes:
    """A whole HTTP/1.1 response in the reference's JSON error shape, closing the connection."""
    body = orjson.dumps({"error": code, "message": message})
    return (f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body


_TOO_LARGE = _closing_answer(
    "431 Request Header Fields Too Large", "headers_too_large",
    f"The request line and headers may be at most {MAX_HEAD_BYTES // 1024} KiB.")
_UNPARSABLE = _closing_answer(
    "400 Bad Request", "bad_request",
    "The request is not valid HTTP/1.1 (request line, headers or framing).")


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that refuses a request head larger than ``MAX_HEAD_BYTES``."""

    _head_bytes = 0
    _refused = False

    def on_message_begin(self) -> None:
        self._head_bytes = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        if self._counted(len(url)):
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._counted(len(name) + len(value) + 4):
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if not self._refused:
            super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        if self._refused and not self.transport.is_closing():
            self.transport.write(_TOO_LARGE)
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to what httptools cannot parse, in our JSON shape (not plain text)."""
        self.transport.write(_UNPARSABLE)
        self.transport.close()

    def _counted(self, size: int) -> bool:
        """Count ``size`` more head bytes; False (and refuse) once past the limit."""
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:
            self._refused = True
        return not self._refused
