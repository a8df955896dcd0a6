"""Fixtures shared by every test folder: the test images, and a real ``imgpro serve`` process.

Every server started here is watched: after each test, the part of each server's log written
since the last look must hold no unhandled error (``UNHANDLED_MARKERS``), or that test fails
(in its call phase for errors logged while it ran, in its teardown for errors logged while
its servers stopped). A 500 that a test does not look for, a traceback from a background task,
a CancelledError uvicorn had to answer: all fail the test that caused them. A test that
provokes logged errors on purpose says so with ``@pytest.mark.logs_errors("why")``.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import pytest

from tests.images.build import test_images_dir

ROOT = Path(__file__).resolve().parent.parent


CORPUS = test_images_dir()
"""The test images (``tests/images``): kept in the repository or built from it, never skipped."""


DEFAULT_FUZZ_BUDGET = 40
"""Examples per property-based (fuzz) test in CI: a few tens of seconds in all."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fuzz-budget", type=int, default=None, metavar="N",
        help=f"examples per fuzz test (default {DEFAULT_FUZZ_BUDGET}, or IMGPRO_FUZZ_BUDGET); "
             "a larger budget also draws new random inputs instead of the fixed CI ones")


def pytest_configure(config: pytest.Config) -> None:
    # The test modules read the budget when they are imported (schemathesis and hypothesis
    # settings are decorators): hand the option over through the environment.
    budget = config.getoption("--fuzz-budget")
    if budget is not None:
        os.environ["IMGPRO_FUZZ_BUDGET"] = str(budget)


def fuzz_budget() -> int:
    """Examples per fuzz test: ``--fuzz-budget`` / ``IMGPRO_FUZZ_BUDGET``, else the CI default."""
    return int(os.environ.get("IMGPRO_FUZZ_BUDGET") or DEFAULT_FUZZ_BUDGET)


def fuzz_is_fixed() -> bool:
    """At the CI budget the inputs are the same every run (a failure reproduces as is)."""
    return fuzz_budget() == DEFAULT_FUZZ_BUDGET


@dataclass(frozen=True)
class CorpusImage:
    path: Path
    format: str
    width: int
    height: int
    bytes: int

    @property
    def data(self) -> bytes:
        return self.path.read_bytes()


def load_corpus() -> list[CorpusImage]:
    with (CORPUS / "MANIFEST.tsv").open() as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return [
        CorpusImage(CORPUS / r["file"], r["format"], int(r["width"]), int(r["height"]),
                    int(r["bytes"]))
        for r in rows
    ]


@pytest.fixture(scope="session")
def corpus() -> list[CorpusImage]:
    """Every test image, real photos of several formats, sizes and orientations."""
    return load_corpus()


@dataclass
class RunningServer:
    url: str
    data_dir: Path
    process: subprocess.Popen[str]
    env: dict[str, str]
    log_path: Path
    checked_to: int = 0
    """Bytes of the log already looked at for unhandled errors (see ``unhandled_errors``)."""

    def log(self) -> str:
        return self.log_path.read_text()

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)  # type: ignore[arg-type]


UNHANDLED_MARKERS = ("Traceback (most recent call last)", "Exception in ASGI application",
                     "unhandled error", "ASGI callable returned without")
"""What a server log shows when something went wrong that no code path answered on purpose:
Python tracebacks (``log.exception`` included), uvicorn's own catch-all, our 500 handler."""

_WATCHED: list[RunningServer] = []
"""Servers whose logs are checked after each test; a stopped one leaves once fully read."""


def unhandled_errors(server: RunningServer) -> str:
    """The new part of the server's log if it shows an unhandled error, else ""; either way
    the part counts as read from now on."""
    with server.log_path.open("rb") as fh:
        fh.seek(server.checked_to)
        new = fh.read()
    server.checked_to += len(new)
    text = new.decode("utf-8", "replace")
    return text if any(marker in text for marker in UNHANDLED_MARKERS) else ""


def _check_server_logs(item: pytest.Item, phase: str) -> None:
    found = []
    for server in list(_WATCHED):
        stopped = server.process.poll() is not None
        errors = unhandled_errors(server)
        if stopped:
            _WATCHED.remove(server)
        if errors:
            found.append(f"--- {server.log_path} ---\n{errors[-4000:]}")
    if found and item.get_closest_marker("logs_errors") is None:
        pytest.fail(f"a server logged an unhandled error during the {phase} of this test "
                    "(mark it @pytest.mark.logs_errors(\"why\") if that is the point):\n"
                    + "\n".join(found), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> object:
    result = yield
    _check_server_logs(item, "run")
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> object:
    result = yield  # every fixture this item finalises, servers stopped among them
    _check_server_logs(item, "teardown")
    return result


_URL_LINE = re.compile(r"serving on (http://\S+)")


def start_server(data_dir: Path, env: dict[str, str] | None = None, args: list[str] | None = None,
                 timeout: float = 60.0) -> RunningServer:
    """Start ``imgpro serve --port 0`` as a real process; returns once /healthz answers 200."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "IMGPRO_DATA_DIR": str(data_dir),
                "IMGPRO_HOST": "127.0.0.1", "IMGPRO_PORT": "0", **(env or {})}
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "server.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "api", "serve", *(args or [])],
            cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT, text=True,
        )
    deadline = time.monotonic() + timeout
    url = None
    while time.monotonic() < deadline and proc.poll() is None:
        match = _URL_LINE.search(log_path.read_text())
        if match:
            url = match.group(1)
            break
        time.sleep(0.05)
    if url is None:
        proc.kill()
        raise RuntimeError("server did not start:\n" + log_path.read_text())
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                server = RunningServer(url, data_dir, proc, full_env, log_path)
                _WATCHED.append(server)
                return server
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"server at {url} never became healthy:\n" + log_path.read_text())


def stop_server(server: RunningServer, timeout: float = 20.0) -> int:
    server.process.terminate()
    try:
        return server.process.wait(timeout)
    except subprocess.TimeoutExpired:
        server.process.kill()
        return server.process.wait()


@contextmanager
def running_server(data_dir: Path, env: dict[str, str] | None = None) -> Iterator[RunningServer]:
    """A real server for a ``with`` block: module-scoped fixtures share one this way."""
    server = start_server(data_dir, env)
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """Start as many real servers as a test needs; all are stopped at teardown."""
    started: list[RunningServer] = []

    def factory(env: dict[str, str] | None = None, args: list[str] | None = None,
                data_dir: Path | None = None) -> RunningServer:
        server = start_server(data_dir or tmp_path / f"data{len(started)}", env, args)
        started.append(server)
        return server

    yield factory
    for server in started:
        if server.process.poll() is None:
            stop_server(server)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
          "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass
class MotoServer:
    endpoint_url: str
    process: subprocess.Popen[bytes]
    log: IO[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.log.close()


def start_moto(log_dir: Path) -> MotoServer:
    """Start moto in server mode as its own process on a free loopback port."""
    port = free_port()
    log = (log_dir / f"moto-{port}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **S3_ENV},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/moto-api/", timeout=1)
            return MotoServer(url, proc, log)
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    proc.wait()
    log.close()
    raise RuntimeError("moto server did not start")


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """A real S3 endpoint over HTTP: moto in server mode, its own process, on a free port."""
    moto = start_moto(tmp_path_factory.mktemp("moto"))
    saved = {key: os.environ.get(key) for key in S3_ENV}
    os.environ.update(S3_ENV)
    yield moto
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    moto.stop()
