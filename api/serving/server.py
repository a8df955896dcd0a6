"""Process start-up for ``imgpro serve``: bind, print the URL, run uvicorn (one or N workers)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket
from collections.abc import Callable
from types import FrameType

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess
from uvicorn.supervisors.multiprocess import Process

from api.serving.http_protocol import BoundedHttpToolsProtocol
from api.serving.worker_sockets import bind_worker_sockets, join_group
from api.settings import Settings

_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

MALLOC_ARENAS = 2
MALLOC_MMAP_THRESHOLD = 1024 * 1024
MALLOC_TOP_PAD = 16 * 1024 * 1024
MALLOC_ENV = {"MALLOC_ARENA_MAX": str(MALLOC_ARENAS),
              "MALLOC_MMAP_THRESHOLD_": str(MALLOC_MMAP_THRESHOLD),
              "MALLOC_TOP_PAD_": str(MALLOC_TOP_PAD)}
"""The same settings as environment variables, which ``imgpro serve`` sets for its workers."""


def tune_malloc(arenas: int = MALLOC_ARENAS, mmap_threshold: int = MALLOC_MMAP_THRESHOLD,
                top_pad: int = MALLOC_TOP_PAD) -> None:
    """MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_ and MALLOC_TOP_PAD_ for this process, which
    glibc read before ``imgpro serve`` could set them (worker processes get them from the
    environment).

    A fixed mmap threshold also stops glibc's dynamic threshold from climbing to 32 MB, after
    which freed decode buffers stay in the heap and RSS creeps up under a long cold load.

    The top pad keeps up to 16 MB of freed heap top per arena instead of giving it back at
    once (glibc's default keeps 128 KB). A miss allocates and frees many sub-megabyte libvips
    and codec buffers; with the default pad every request grew the heap again, page fault by
    page fault, and the kernel's share of a worker's CPU was several times what the same
    transforms cost in-process. The pad trades a little RSS per worker for most of those
    faults (``python -m bench.miss_cost``; figures in the README, "Miss speed").
    """
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(libc_name)
        libc.mallopt(_M_ARENA_MAX, arenas)
        libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)
        libc.mallopt(_M_TOP_PAD, top_pad)


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


class Supervisor(Multiprocess):
    """uvicorn's worker supervisor, with two changes.

    On SIGTERM/SIGINT it closes its own copies of the listening sockets before telling the
    workers to drain. The workers close theirs at the start of their graceful shutdown; while
    the supervisor still held one, the kernel kept completing handshakes that nobody would ever
    accept, so clients hung until the drain ended and were then reset, instead of being refused
    at once and retried on another node by the load balancer.

    With ``worker_sockets`` (``api.serving.worker_sockets``), worker *i* listens on socket *i*
    of one reuseport group instead of all workers on one socket, so the kernel spreads new
    connections over the workers; a replacement for a dead worker gets its socket back. The
    methods that create processes are uvicorn 0.54's with that one difference (pinned in
    pyproject.toml; ``tests/api/serving/test_uvicorn_fence.py`` names what they use).
    """

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket],
                 worker_sockets: list[socket.socket] | None = None) -> None:
        super().__init__(config, sockets)
        self.worker_sockets = worker_sockets

    def _start_worker(self, index: int) -> Process:
        """Worker ``index``, started on its own socket (if any) and the shared ones: the one
        thing the methods below do differently from uvicorn's."""
        own = [self.worker_sockets[index]] if self.worker_sockets is not None else []
        process = Process(self.config, own + self.sockets)
        process.start()
        return process

    def init_processes(self) -> None:
        for index in range(self.processes_num):
            self.processes.append(self._start_worker(index))

    def restart_all(self) -> None:
        for index, old_process in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            new_process = self._start_worker(index)
            if not new_process.wait_until_ready(self.config.timeout_worker_healthcheck,
                                                self.should_exit):
                new_process.kill()
                new_process.join()
                return
            old_process.terminate()
            old_process.join()
            self.processes[index] = new_process

    def keep_subprocess_alive(self) -> None:
        if self.should_exit.is_set():
            return
        for index, process in enumerate(self.processes):
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()  # hung: kill it
            process.join()
            if process.exitcode == STARTUP_FAILURE:
                # Failed before serving: the app or the bind is broken and would fail again.
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            self.processes[index] = self._start_worker(index)

    def handle_ttin(self) -> None:
        if self.worker_sockets is not None:
            self.worker_sockets.append(join_group(self.worker_sockets[0]))
        self.processes_num += 1
        self.processes.append(self._start_worker(self.processes_num - 1))

    def handle_ttou(self) -> None:
        if self.processes_num <= 1:
            return
        super().handle_ttou()
        if self.worker_sockets is not None:  # nobody accepts on it any more: out of the group
            self.worker_sockets.pop().close()

    def handle_term(self) -> None:
        self._stop_listening()
        super().handle_term()

    def handle_int(self) -> None:
        self._stop_listening()
        super().handle_int()

    def _stop_listening(self) -> None:
        for sock in [*(self.worker_sockets or []), *self.sockets]:
            sock.close()


def _app_factory(bound: list[Settings]) -> str | Callable[[], object]:
    """One process: the app is built from the settings in ``bound`` (filled in once the port
    is bound). Several: each worker process imports the factory by name (uvicorn spawns them)
    and reads the environment, so the supervisor never loads libvips."""
    if bound[0].workers > 1:
        return "api.serving.app:create_app"
    from api.serving.app import create_app

    return lambda: create_app(bound[0])


def run(settings: Settings) -> int:
    """Bind, print the URL, serve until SIGTERM. ``settings`` were read once by the caller;
    worker processes (``--workers N``) read the same environment in ``create_app``."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    tune_malloc()
    bound = [settings]
    config = uvicorn.Config(
        _app_factory(bound),
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http=BoundedHttpToolsProtocol,
        lifespan="on",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        # uvicorn annotates an int but hands it to asyncio.wait_for, which takes seconds as float.
        timeout_graceful_shutdown=settings.shutdown_timeout,  # type: ignore[arg-type]
        log_level="warning",
    )
    worker_sockets = (bind_worker_sockets(settings.host, settings.port, settings.workers)
                      if settings.worker_sockets == "own" else None)
    if worker_sockets is None:
        sockets = [config.bind_socket()]  # one socket, shared by the workers if several
        port = sockets[0].getsockname()[1]
    else:
        sockets = []
        port = worker_sockets[0].getsockname()[1]
    # Workers and URL defaults must see the real port when --port 0 picked a free one.
    os.environ["IMGPRO_PORT"] = str(port)
    settings = bound[0] = settings.model_copy(update={"port": port})
    if settings.metrics_bind is not None:
        metrics_sock = bind_metrics_socket(*settings.metrics_bind, main_port=port)
        sockets.append(metrics_sock)
        host, metrics_port = metrics_sock.getsockname()[:2]
        address = f"[{host}]:{metrics_port}" if ":" in host else f"{host}:{metrics_port}"
        os.environ["IMGPRO_METRICS_ADDRESS"] = address  # the workers serve the bound port
        settings = bound[0] = settings.model_copy(update={"metrics_address": address})
        print(f"imgpro metrics on http://{address}/metrics", flush=True)
    print(f"imgpro ({settings.role}) serving on {settings.own_url}", flush=True)
    # uvicorn drains in-flight requests on SIGTERM (for at most IMGPRO_SHUTDOWN_TIMEOUT
    # seconds), then re-raises the signal; ending with status 0 tells process supervisors
    # the stop was clean.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    if settings.workers > 1:
        Supervisor(config, sockets=sockets, worker_sockets=worker_sockets).run()
    else:
        uvicorn.Server(config).run(sockets=sockets)
    return 0


def bind_metrics_socket(host: str, port: int, *, main_port: int) -> socket.socket:
    """The listener of ``IMGPRO_METRICS_ADDRESS``, bound as uvicorn binds the main one.

    Requests are told apart by the local port they arrived on, so it must differ from the
    main port (the same port on another interface would be indistinguishable).
    """
    if port == main_port:
        raise SystemExit(f"IMGPRO_METRICS_ADDRESS must use another port than the API ({port})")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SystemExit(f"cannot listen on IMGPRO_METRICS_ADDRESS {host}:{port}: {exc}") from None
    sock.set_inheritable(True)
    return sock
