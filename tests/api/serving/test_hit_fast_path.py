"""Memory hits answered by the HTTP protocol itself (``api.serving.http_protocol``), on a real
server.

The protocol answers a hit before uvicorn builds an ASGI cycle; everything else takes the
usual path. These tests hold the two paths to the same answers, and the connection to HTTP/1.1
semantics: order of pipelined answers, keep-alive and ``Connection: close``, HTTP/1.0, HEAD,
304, a GET that carries a body.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httptools
import httpx
import pytest

from tests.api.serving.test_observability import place, png
from tests.conftest import RunningServer, running_server

VOLATILE = {b"date", b"x-request-id", b"x-cache"}


@dataclass
class Reply:
    status: int = 0
    headers: dict[bytes, bytes] = field(default_factory=dict)
    body: bytes = b""

    def stable_headers(self) -> dict[bytes, bytes]:
        return {k: v for k, v in self.headers.items() if k not in VOLATILE}


class _Replies:
    """httptools' response parser callbacks: whole replies, in the order they arrive."""

    def __init__(self) -> None:
        self.done: list[Reply] = []
        self.current = Reply()
        self.parser = httptools.HttpResponseParser(self)

    def on_headers_complete(self) -> None:
        self.current.status = self.parser.get_status_code()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.current.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.current.body += body

    def on_message_complete(self) -> None:
        self.done.append(self.current)
        self.current = Reply()


def exchange(server: RunningServer, raw: bytes, replies: int) -> tuple[list[Reply], bool]:
    """Send raw bytes on one connection, read ``replies`` responses; True if then closed."""
    host, port = server.url.removeprefix("http://").split(":")
    found = _Replies()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(raw)
        while len(found.done) < replies:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {len(found.done)} of {replies} replies"
            found.parser.feed_data(chunk)
        sock.settimeout(0.5)
        try:
            closed = sock.recv(1) == b""
        except TimeoutError:
            closed = False
    return found.done, closed


def get(path: str, *extra: str, version: str = "1.1", method: str = "GET") -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "Host: 127.0.0.1", *extra, "", ""]
    return "\r\n".join(lines).encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    data_dir = tmp_path_factory.mktemp("fast-path")
    # Refine off: the hits compared here must not be swapped for final ones mid-test.
    with running_server(data_dir, {"IMGPRO_ROLE": "cdn", "IMGPRO_REFINE": "off"}) as running:
        place(running, "hot", png(640, 480))
        for _ in range(2):  # render, then the memory layer holds it
            assert httpx.get(f"{running.url}/t/hot.webp?size=s").status_code == 200
        yield running


def test_a_hit_is_answered_as_the_asgi_path_answers_it(server: RunningServer) -> None:
    place(server, "cold1", png(500, 400))
    # Pipelined behind a miss, the second request waits for it and takes the ASGI path
    # (x-cache: memory); on its own connection, the same request takes the protocol's path.
    (miss, through_asgi), _ = exchange(
        server, get("/t/cold1.webp?size=s") + get("/t/cold1.webp?size=s"), 2)
    (direct,), _ = exchange(server, get("/t/cold1.webp?size=s"), 1)
    assert miss.headers[b"x-cache"] == b"miss"
    assert through_asgi.headers[b"x-cache"] == direct.headers[b"x-cache"] == b"memory"
    assert direct.status == through_asgi.status == 200
    assert direct.stable_headers() == through_asgi.stable_headers() == miss.stable_headers()
    assert direct.body == through_asgi.body == miss.body and direct.body[8:12] == b"WEBP"
    assert direct.headers[b"x-request-id"] != through_asgi.headers[b"x-request-id"]
    assert b"date" in direct.headers


def test_pipelined_requests_are_answered_in_order(server: RunningServer) -> None:
    place(server, "cold2", png(300, 200))
    raw = (get("/t/hot.webp?size=s") + get("/t/cold2.jpg?size=s") + get("/t/hot.webp?size=s")
           + get("/t/nothing.webp?size=s") + get("/t/hot.webp?size=s"))
    replies, closed = exchange(server, raw, 5)
    assert [r.status for r in replies] == [200, 200, 200, 404, 200]
    assert [r.headers.get(b"x-cache") for r in replies] == [
        b"memory", b"miss", b"memory", None, b"memory"]
    assert replies[1].headers[b"content-type"] == b"image/jpeg"
    assert replies[0].body == replies[2].body == replies[4].body
    assert not closed


def test_head_and_conditional_hits(server: RunningServer) -> None:
    (full,), _ = exchange(server, get("/t/hot.webp?size=s"), 1)
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(get("/t/hot.webp?size=s", method="HEAD") + get("/t/hot.webp?size=s"))
        received = b""
        while received.count(b"\r\n\r\n") < 2 or not received.endswith(full.body):
            chunk = sock.recv(65536)
            assert chunk
            received += chunk
    head, rest = received.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 ")
    assert f"content-length: {len(full.body)}".encode() in head
    assert rest.startswith(b"HTTP/1.1 200 ")  # no body after the HEAD answer
    etag = full.headers[b"etag"].decode()
    (unchanged, changed), _ = exchange(
        server, get("/t/hot.webp?size=s", f"If-None-Match: W/{etag}")
        + get("/t/hot.webp?size=s", 'If-None-Match: "other"'), 2)
    assert unchanged.status == 304 and unchanged.body == b""
    assert unchanged.headers[b"etag"] == full.headers[b"etag"]
    assert changed.status == 200 and changed.body == full.body


@pytest.mark.parametrize(("version", "extra"), [("1.1", "Connection: close"), ("1.0", None)])
def test_hits_that_end_the_connection(server: RunningServer, version: str,
                                      extra: str | None) -> None:
    raw = get("/t/hot.webp?size=s", *([extra] if extra else []), version=version)
    (reply,), closed = exchange(server, raw, 1)
    assert reply.status == 200 and reply.headers[b"x-cache"] == b"memory"
    assert reply.headers[b"connection"] == b"close"
    assert closed


def test_a_hit_that_carries_a_body_keeps_the_connection_usable(server: RunningServer) -> None:
    raw = get("/t/hot.webp?size=s", "Content-Length: 11") + b"hello world" + get("/healthz")
    (hit, health), closed = exchange(server, raw, 2)
    assert hit.status == 200 and hit.headers[b"x-cache"] == b"memory"
    assert health.status == 200 and b'"ok"' in health.body
    assert not closed


def test_a_hit_creates_no_asgi_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process: the protocol answers a hit without handing it to uvicorn's ASGI cycle."""
    from api.serving.app import create_app
    from bench.hit_cost import lifespan_step, protocol_feeder
    from transformer.originals import open_store

    monkeypatch.setenv("IMGPRO_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("IMGPRO_ROLE", "cdn")
    monkeypatch.setenv("IMGPRO_ACCESS_LOG", "false")
    request = get("/t/hit.png?size=s")

    async def scenario() -> None:
        store = open_store(f"file://{tmp_path}/originals")
        await store.put("t", "hit", png(400, 300))
        app = create_app()
        queue: asyncio.Queue = asyncio.Queue()
        out: asyncio.Queue = asyncio.Queue()
        life = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"},
                                        "state": {}}, queue.get, out.put))
        await lifespan_step(app, "startup", queue, out)
        feed, written = protocol_feeder(app)
        protocol = feed.__self__
        feed(request)  # a miss: an ASGI task renders it
        assert len(protocol.tasks) == 1
        while protocol.tasks:
            await asyncio.sleep(0.01)
        assert b"x-cache: miss" in written[-2]  # the ASGI path writes head, then body
        feed(request)
        assert not protocol.tasks, "the hit went to the ASGI path"
        assert written[-1].startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"x-cache: memory" in written[-1]
        feed(get("/t/hit.png?size=s", method="POST"))  # not GET/HEAD: the usual path
        assert len(protocol.tasks) == 1
        while protocol.tasks:
            await asyncio.sleep(0.01)
        assert written[-2].startswith(b"HTTP/1.1 405 ")
        await lifespan_step(app, "shutdown", queue, out)
        await life

    asyncio.run(scenario())
