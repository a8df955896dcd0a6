"""A TCP proxy a test controls: forwards a local port to a target, and can cut and restore it.

It runs its own asyncio loop in a daemon thread, so a synchronous test (httpx clients, real
server processes) can call ``cut()`` and ``restore()`` between requests. ``cut`` closes the
listening socket (new connections are refused, as by a host that is down) and resets every
open connection (as a crashed or restarted server does: the peer sees ECONNRESET or EOF in
the middle of whatever it was doing). ``restore`` listens again on the same port.

The proxy accepts on its own listening socket rather than through ``asyncio.start_server``:
an ``asyncio.Server`` closed by a cut while a connection it had just accepted was still
waiting for its transport (the next loop step) makes that transport fail in
``Server._attach`` (an assertion, in Python 3.11 to 3.13 at least), and asyncio drops it with
its socket open, which later warns "unclosed transport" into whichever test is running. Here
the reader callback that accepts hands each socket to its handler task at once, the handler
owns it on every path, and a cut resets connections accepted before it whether or not their
handler has started.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
_CHUNK = 65536


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.connections = 0
        """Connections accepted so far (a test can check that the server reconnected)."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy",
                                        daemon=True)
        self._listener: socket.socket | None = None
        self._cuts = 0
        """Cuts so far: a handler resets its connection if one came after its accept."""
        self._handlers: set[asyncio.Task[None]] = set()
        self._open: set[asyncio.StreamWriter] = set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        self._call(self._cut())

    def restore(self) -> None:
        """Accept (and forward) connections again, on the same port."""
        self._call(self._listen())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _listen(self) -> None:
        if self._listener is not None:
            return
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(128)
            listener.setblocking(False)
            asyncio.get_running_loop().add_reader(listener, self._accept, listener)
        except BaseException:
            listener.close()
            raise
        self.port = listener.getsockname()[1]
        self._listener = listener

    def _accept(self, listener: socket.socket) -> None:
        """The listener's reader callback: every waiting connection goes to a handler task in
        this same loop step (a cut before the task's first step is seen by its count of cuts)."""
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # none left (or the peer gave up: the next readiness retries)
                return
            conn.setblocking(False)
            self.connections += 1
            task = self._loop.create_task(self._handle(conn, self._cuts))
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)

    async def _cut(self) -> None:
        self._cuts += 1
        if self._listener is not None:
            self._loop.remove_reader(self._listener)
            self._listener.close()
            self._listener = None
        for writer in list(self._open):
            _reset(writer)
        self._open.clear()

    async def _shutdown(self) -> None:
        """Cut, then let every handler end by its own paths (each closes what it opened); only
        one still running after that is cancelled. No socket or transport is left open when
        the loop stops (one left so was garbage-collected later, warning "unclosed
        transport" into whichever test was running)."""
        await self._cut()
        if self._handlers:
            _done, pending = await asyncio.wait(set(self._handlers), timeout=5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await asyncio.sleep(0)  # the closed transports' connection_lost callbacks

    async def _handle(self, conn: socket.socket, accepted_at: int) -> None:
        """Forward one accepted connection; a cut since ``accepted_at`` resets it."""
        if self._cuts != accepted_at:  # cut before this handler's first step
            _reset_socket(conn)
            return
        try:
            client_r, client_w = await asyncio.open_connection(sock=conn)
        except BaseException:
            conn.close()
            raise
        self._open.add(client_w)
        try:
            if self._cuts != accepted_at:
                _reset(client_w)
                return
            try:
                target_r, target_w = await asyncio.open_connection(*self.target)
            except OSError:
                _reset(client_w)
                return
            self._open.add(target_w)
            try:
                if self._cuts != accepted_at:  # cut while connecting to the target
                    _reset(client_w)
                    _reset(target_w)
                    return
                await asyncio.gather(_pump(client_r, target_w), _pump(target_r, client_w))
            finally:
                self._open.discard(target_w)
                target_w.close()
        finally:
            self._open.discard(client_w)
            client_w.close()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()


def _linger_zero(sock: Any) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _reset_socket(sock: socket.socket) -> None:
    """Close with RST instead of FIN (SO_LINGER 0), as a dead peer's kernel would."""
    _linger_zero(sock)
    sock.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """``_reset_socket`` for a connection already wrapped in a stream."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        _linger_zero(sock)
    writer.transport.abort()
