"""A listening socket per worker (``api.serving.worker_sockets``): the kernel, not the first
worker to wake, decides which worker takes a new connection."""

from __future__ import annotations

import json
import socket
import sys
import time
from collections import Counter

import pytest

from api.serving.worker_sockets import bind_worker_sockets
from tests.conftest import RunningServer

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT")


def listening_sockets(port: int) -> set[int]:
    """Inodes of the TCP sockets listening on ``port`` (from /proc/net/tcp and tcp6)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            next(rows)
            for row in rows:
                fields = row.split()
                local, state, inode = fields[1], fields[3], int(fields[9])
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    inodes.add(inode)
    return inodes


def pid_per_connection(server: RunningServer, connections: int) -> Counter[int]:
    """Open ``connections`` at once, then ask /healthz on each: which worker holds which."""
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    socks = [socket.create_connection((host, int(port)), timeout=10) for _ in range(connections)]
    pids: Counter[int] = Counter()
    try:
        for sock in socks:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n")
        for sock in socks:
            data = b""
            while b"}" not in data:
                chunk = sock.recv(4096)
                assert chunk, "connection closed before the answer"
                data += chunk
            pids[json.loads(data[data.index(b"{"):data.index(b"}") + 1])["pid"]] += 1
    finally:
        for sock in socks:
            sock.close()
    return pids


def test_each_worker_listens_on_its_own_socket_and_takes_connections(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory({"IMGPRO_ROLE": "cdn"}, args=["--workers", "2"])
    port = int(server.url.rsplit(":", 1)[1])
    # One socket per worker in one reuseport group. Before, one socket was shared, and the
    # worker that woke first took a burst of connections: 23 of 32 under wrk, sometimes all.
    deadline = time.monotonic() + 30  # /healthz answered: one worker is up, maybe not both
    while len(listening_sockets(port)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(listening_sockets(port)) == 2
    pids = pid_per_connection(server, 64)
    assert len(pids) == 2 and sum(pids.values()) == 64
    # The kernel hashes each connection to a socket: a fair coin per connection, so fewer than
    # 12 of 64 on one worker happens about once in a million runs.
    assert min(pids.values()) >= 12, pids


def test_one_worker_keeps_one_socket(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory({"IMGPRO_ROLE": "cdn"})
    assert len(listening_sockets(int(server.url.rsplit(":", 1)[1]))) == 1


def test_a_port_in_use_is_refused_not_shared() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit, match=f"cannot listen on 127.0.0.1:{port}"):
            bind_worker_sockets("127.0.0.1", port, 2)


def test_port_zero_gives_one_free_port_to_every_socket() -> None:
    socks = bind_worker_sockets("127.0.0.1", 0, 3)
    assert socks is not None
    try:
        assert len({sock.getsockname()[1] for sock in socks}) == 1
    finally:
        for sock in socks:
            sock.close()


def test_shared_setting_keeps_one_socket_for_all_workers(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory({"IMGPRO_ROLE": "cdn", "IMGPRO_WORKER_SOCKETS": "shared"},
                            args=["--workers", "2"])
    port = int(server.url.rsplit(":", 1)[1])
    seen: set[int] = set()
    deadline = time.monotonic() + 30
    while len(seen) < 2 and time.monotonic() < deadline:  # both workers up and accepting
        seen |= set(pid_per_connection(server, 16))
    assert len(seen) == 2
    assert len(listening_sockets(port)) == 1
