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


class HeadTooLarge(Exception):
    """Raised inside a parser callback: httptools stops parsing and uvicorn answers 400."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that refuses a request head larger than ``MAX_HEAD_BYTES``.

    The two callbacks that receive head bytes count them, and the end of a head resets the
    count (three wrapped calls per request, no measurable cost in an A/B of hits): past the
    limit they raise, httptools abandons the parse, and ``send_400_response`` (ours: JSON, 431
    for this case) closes the connection.
    """

    _head_bytes = 0
    _too_large = False

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_bytes = 0  # the next request on this connection starts from zero
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to what httptools cannot parse, in our JSON shape (not plain text)."""
        self.transport.write(_TOO_LARGE if self._too_large else _UNPARSABLE)
        self.transport.close()

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:
            self._too_large = True
            raise HeadTooLarge
