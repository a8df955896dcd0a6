"""The fault tests' TCP proxy itself: cut and restored while connections keep arriving, it
forwards, and leaves no socket or transport open behind it.

A connection accepted in the loop step before a cut used to lose its transport inside asyncio
(the ``asyncio.Server`` was closed before the transport of its last accept was made), with its
socket still open: a ResourceWarning "unclosed transport" that surfaced at some later garbage
collection, in whichever test was running then (test_s3_outage, test_database_cut).
"""

from __future__ import annotations

import gc
import socket
import sys
import threading
import time

import pytest

from tests.faults.tcp_proxy import TcpProxy


def _echo(conn: socket.socket) -> None:
    with conn:
        try:
            conn.settimeout(5)
            while data := conn.recv(65536):
                conn.sendall(data)
        except OSError:
            pass


def _echo_target(stop: threading.Event) -> tuple[socket.socket, threading.Thread]:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)

    def serve() -> None:
        with listener:
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                threading.Thread(target=_echo, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


def test_cuts_while_connections_arrive_leave_nothing_open(monkeypatch: pytest.MonkeyPatch) -> None:
    leaked: list[str] = []
    monkeypatch.setattr(sys, "unraisablehook",
                        lambda u: leaked.append(f"{u.exc_value!r} in {u.object!r}"))
    stop = threading.Event()
    target, serving = _echo_target(stop)
    proxy = TcpProxy(*target.getsockname()).start()
    echoed = 0

    def client() -> None:
        nonlocal echoed
        while not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as sock:
                    sock.sendall(b"ping")
                    if sock.recv(4) == b"ping":
                        echoed += 1
            except OSError:  # refused or reset by a cut: what the proxy is for
                time.sleep(0.001)

    clients = [threading.Thread(target=client, daemon=True) for _ in range(4)]
    try:
        for thread in clients:
            thread.start()
        for _ in range(150):
            time.sleep(0.002)
            proxy.cut()
            proxy.restore()
        time.sleep(0.05)
    finally:
        proxy.close()  # with clients still connecting
        stop.set()
        for thread in clients + [serving]:
            thread.join(10)
    gc.collect()
    assert proxy.connections > 0 and echoed > 0  # it did accept and forward
    assert not leaked, "\n".join(leaked[:5])
