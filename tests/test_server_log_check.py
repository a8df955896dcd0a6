"""The check of tests/conftest.py that fails a test whose server logged an unhandled error:
what counts, attribution by log offset, stopped servers, the logs_errors marker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import tests.conftest as shared
from tests.conftest import RunningServer, unhandled_errors


class _Process:
    def __init__(self, running: bool) -> None:
        self.running = running

    def poll(self) -> int | None:
        return None if self.running else 0


class _Item:
    def __init__(self, marked: bool) -> None:
        self.marked = marked

    def get_closest_marker(self, name: str) -> object | None:
        return object() if self.marked and name == "logs_errors" else None


def _server(tmp_path: Path, running: bool = True) -> RunningServer:
    tmp_path.mkdir(parents=True, exist_ok=True)
    log = tmp_path / "server.log"
    log.write_text("imgpro (all) serving on http://127.0.0.1:1\n")
    return RunningServer("http://127.0.0.1:1", tmp_path, _Process(running), {}, log)  # type: ignore[arg-type]


def _append(server: RunningServer, text: str) -> None:
    with server.log_path.open("a") as fh:
        fh.write(text)


@pytest.mark.parametrize("line", [
    "Traceback (most recent call last):\n", "ERROR:    Exception in ASGI application\n",
    "unhandled error on GET /v1/media\n", "ERROR:    ASGI callable returned without completing\n",
])
def test_what_counts_and_only_once(tmp_path: Path, line: str) -> None:
    server = _server(tmp_path)
    _append(server, '127.0.0.1 "GET /v1/media" 200 10B 1.0ms cache=- id=x\n')
    assert unhandled_errors(server) == ""
    _append(server, line)
    assert line in unhandled_errors(server)
    assert unhandled_errors(server) == ""  # already read: the next test is not blamed


def test_the_test_that_caused_it_fails_unless_marked(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    running, stopped = _server(tmp_path / "a"), _server(tmp_path / "b", running=False)
    watched: list[Any] = [running, stopped]
    monkeypatch.setattr(shared, "_WATCHED", watched)
    shared._check_server_logs(_Item(marked=False), "run")  # type: ignore[arg-type]
    assert watched == [running]  # a stopped server, once read to its end, is dropped
    _append(running, "Traceback (most recent call last):\n  boom\n")
    with pytest.raises(pytest.fail.Exception, match="during the teardown of this test"):
        shared._check_server_logs(_Item(marked=False), "teardown")  # type: ignore[arg-type]
    _append(running, "Traceback (most recent call last):\n  on purpose\n")
    shared._check_server_logs(_Item(marked=True), "run")  # type: ignore[arg-type]
