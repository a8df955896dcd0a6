"""Start a server as its own process group, wait until it answers, and stop the whole tree.

Each benchmark cell gets a fresh server: work still queued from the previous cell (a slow
server keeps encoding AVIF for the connections wrk just closed) would otherwise eat the next
cell's CPU, and a fresh tree gives a clean peak-RSS figure per cell.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

_URL_LINE = re.compile(r"serving on (http://\S+)")


class ServerFailed(RuntimeError):
    """The server exited or did not become ready; the message holds the end of its log."""


def free_port() -> int:
    """A loopback port that was free a moment ago (for servers that cannot bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerSpec:
    """How to start one participant: the command, and how to learn its URL."""

    name: str
    cmd: list[str]
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)
    url: str | None = None
    """Known base URL (port chosen by us); None means read "serving on URL" from its output."""
    ready_path: str = "/"
    """Polled until it answers (any status below 500) before the server counts as ready."""
    ready_workers: int = 1
    """Distinct ``pid`` values the ready path must report (our /healthz) before load starts:
    connections opened while only one worker is up would all stay on that worker."""


@dataclass
class RunningServer:
    spec: ServerSpec
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, grace: float = 3.0) -> None:
        """SIGTERM the process group we created, SIGKILL it if it lingers.

        The grace is short on purpose: a server that drains its queue of slow transforms
        gracefully would only delay the next cell, and nothing of it is measured any more.
        """
        if self.process.poll() is None:
            _signal_group(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(grace)
        # Forked workers may outlive their parent for a moment: the group id still names them.
        _signal_group(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def start(spec: ServerSpec, log_dir: Path, timeout: float = 60.0) -> RunningServer:
    """Start ``spec`` in a new session and return once it answers HTTP."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{spec.name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            spec.cmd,
            cwd=spec.cwd,
            env={**os.environ, **spec.env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = RunningServer(spec, process, spec.url or "", log_path)
    deadline = time.monotonic() + timeout
    try:
        while not server.url:
            _check_alive(server, deadline)
            found = _URL_LINE.search(server.log_tail(100_000))
            if found:
                server.url = found.group(1).rstrip("/")
            else:
                time.sleep(0.05)
        with httpx.Client(timeout=5) as client:
            while True:
                _check_alive(server, deadline)
                try:
                    if client.get(server.url + spec.ready_path).status_code < 500:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        _wait_for_workers(server, deadline)
        return server
    except BaseException:
        server.stop()
        raise


def _wait_for_workers(server: RunningServer, deadline: float) -> None:
    """Poll on fresh connections until every worker has answered once (our /healthz only:
    peers with one process, or no pid to report, are ready at their first answer)."""
    seen: set[int] = set()
    while server.spec.ready_workers > 1 and len(seen) < server.spec.ready_workers:
        _check_alive(server, deadline)
        try:
            answer = httpx.get(server.url + server.spec.ready_path, timeout=5)
            seen.add(int(answer.json()["pid"]))
        except (httpx.TransportError, ValueError, KeyError):
            time.sleep(0.1)


def _check_alive(server: RunningServer, deadline: float) -> None:
    if server.process.poll() is not None:
        raise ServerFailed(
            f"{server.spec.name} exited ({server.process.returncode}):\n{server.log_tail()}"
        )
    if time.monotonic() > deadline:
        raise ServerFailed(f"{server.spec.name} not ready in time:\n{server.log_tail()}")
