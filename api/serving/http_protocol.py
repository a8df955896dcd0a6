"""uvicorn's httptools protocol with a bound on the request head, and JSON for its own errors.

httptools (llhttp) keeps every header line it is given and uvicorn imposes no limit, so a
client that never ends its headers grew the process without bound (found by the hostile-input
audit, docs/api-status.md). Past ``MAX_HEAD_BYTES`` this protocol stops
keeping what arrives, answers ``431`` in the reference's JSON error shape and closes the
connection. Our own URLs and headers are far below the limit; nginx's default is 32 KiB.
What httptools cannot parse at all (a bad Content-Length, Content-Length with
Transfer-Encoding, bytes that are not HTTP) gets a 400 in the same JSON shape, where uvicorn
answers in plain text.

It also answers CDN memory-cache hits itself, as soon as their head is parsed: the app's
``answer_from_memory(scope)`` builds the response without awaiting anything, and the protocol
writes it in one call. uvicorn's usual path costs a hit an ASGI cycle object, an asyncio task,
an Event and two send messages whose headers it validates again; that was about half of what a
hit cost (``bench/hit_cost.py`` and the README's Benchmarks section have the figures). Only the
easy case is taken: GET/HEAD, nothing earlier on the connection still in progress, the
client reading what we write; everything else, and every hit the app declines, goes the usual
way.
"""

from __future__ import annotations

import functools
from itertools import chain
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

MAX_HEAD_BYTES = 64 * 1024


def _closing_answer(status: str, code: str, message: str) -> bytes:
    """A whole HTTP/1.1 response in the reference's JSON error shape, closing the connection."""
    # Imported here, not at the top: ``imgpro serve``'s supervisor imports this module to hand
    # the class to uvicorn, and importing anything under ``transformer`` loads libvips.
    from transformer.origin.error_body import error_json

    body = error_json(code, message)
    return (f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body


@functools.cache
def _refusal(too_large: bool) -> bytes:
    """The two answers the protocol gives itself, built once per process on first use."""
    if too_large:
        return _closing_answer(
            "431 Request Header Fields Too Large", "headers_too_large",
            f"The request line and headers may be at most {MAX_HEAD_BYTES // 1024} KiB.")
    return _closing_answer(
        "400 Bad Request", "bad_request",
        "The request is not valid HTTP/1.1 (request line, headers or framing).")


class HeadTooLarge(Exception):
    """Raised inside a parser callback: httptools stops parsing and uvicorn answers 400."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that refuses a request head larger than ``MAX_HEAD_BYTES`` and
    answers memory hits itself (``_answer_hit``, see the module docstring).

    The two callbacks that receive head bytes count them, and the end of a head resets the
    count (three wrapped calls per request, no measurable cost in an A/B of hits): past the
    limit they raise, httptools abandons the parse, and ``send_400_response`` (ours: JSON, 431
    for this case) closes the connection.
    """

    _head_bytes = 0
    _too_large = False
    _answered = False  # the current request was answered from memory: ignore its body

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._answer_from_memory = getattr(self.app, "answer_from_memory", None)

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_bytes = 0  # the next request on this connection starts from zero
        self._answered = self._answer_hit()
        if not self._answered:
            super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._answered:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._answered:
            super().on_message_complete()

    def _answer_hit(self) -> bool:
        """Write a memory hit's response now, if this request is one; else leave it to ASGI."""
        if (self._answer_from_memory is None or self.pipeline or self.flow.write_paused
                or (self.cycle is not None and not self.cycle.response_complete)
                or self.root_path or self.parser.should_upgrade()):
            return False  # HTTP/1.1 answers in order; a slow reader gets uvicorn's backpressure
        method = self.parser.get_method()
        if method != b"GET" and method != b"HEAD":
            return False
        url = httptools.parse_url(self.url)
        if b"%" in url.path:
            return False  # escaped paths: uvicorn's unquoting, on the usual path
        scope = self.scope
        scope["method"] = method.decode()
        scope["path"] = url.path.decode("ascii")
        scope["query_string"] = url.query or b""
        answer = self._answer_from_memory(scope)
        if answer is None:
            return False
        status, headers, body = answer
        keep_alive = self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()
        parts = [STATUS_LINE[status]]
        for name, value in chain(self.server_state.default_headers, headers):
            parts += (name, b": ", value, b"\r\n")
        if not keep_alive:
            parts.append(b"connection: close\r\n")
        parts += (b"\r\n", body)
        self.transport.write(b"".join(parts))
        self.server_state.total_requests += 1
        if keep_alive:  # as uvicorn's on_response_complete: idle connections time out
            self._unset_keepalive_if_required()
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler)
        else:
            self.transport.close()
        return True

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to what httptools cannot parse, in our JSON shape (not plain text)."""
        self.transport.write(_refusal(self._too_large))
        self.transport.close()

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:
            self._too_large = True
            raise HeadTooLarge
