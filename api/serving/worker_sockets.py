"""One listening socket per worker process, all on one port (``SO_REUSEPORT``).

Why: uvicorn's workers share one listening socket, and whichever worker's event loop wakes
first accepts every connection waiting, so a burst of new connections lands mostly on one
worker. Measured under ``wrk`` (connections counted per worker with ``ss``): 23 of 32 and 6 of 8
on one of two workers, and in some runs all of them, which left the other worker's transform
thread idle (perf sampled the workers at one core's worth of CPU on a 2-core machine) and its
clients waiting for three times as many misses. Each worker has cores / workers transform
threads, so misses are only spread over the cores as well as the connections are spread over
the workers. With a socket per worker in one ``SO_REUSEPORT`` group, the kernel hands each new
connection to one of the sockets by a hash of its addresses, independently of which worker is
awake (README, "Miss speed", has the before and after).

The supervisor holds every socket and gives worker *i* socket *i*, also when it replaces a
worker that died, so connections the kernel queued on that socket meanwhile are served by the
replacement (a few seconds late) rather than lost. Where ``SO_REUSEPORT`` is missing, workers
share one socket as before.
"""

from __future__ import annotations

import socket
import sys

REUSEPORT = getattr(socket, "SO_REUSEPORT", None) if sys.platform.startswith("linux") else None
"""Linux balances new connections over a reuseport group; other systems differ (BSD's older
semantics hand them all to the last socket bound), so only Linux gets a socket per worker."""


def bind_worker_sockets(host: str, port: int, workers: int) -> list[socket.socket] | None:
    """``workers`` sockets bound to ``host``:``port`` in one reuseport group (port 0: the first
    picks a free port, the rest join it); None where per-worker sockets are not used."""
    if REUSEPORT is None or workers < 2:
        return None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    bound: list[socket.socket] = []
    try:
        if port != 0:
            # A port someone already listens on must fail here, as a plain bind does, not
            # join their reuseport group and take a share of their connections.
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind((host, port))
        for _ in range(workers):
            bound.append(_bind_one(family, host, port))
            port = bound[0].getsockname()[1]
    except OSError as exc:
        for sock in bound:
            sock.close()
        raise SystemExit(f"cannot listen on {host}:{port}: {exc}") from None
    return bound


def join_group(like: socket.socket) -> socket.socket:
    """One more socket in ``like``'s group, for a worker added with SIGTTIN."""
    host, port = like.getsockname()[:2]
    return _bind_one(like.family, host, port)


def _bind_one(family: socket.AddressFamily, host: str, port: int) -> socket.socket:
    assert REUSEPORT is not None
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock
