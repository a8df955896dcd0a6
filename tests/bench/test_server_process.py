"""bench.server_process: a server counts as ready only when it can take the load."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

from bench.participants import ours_spec
from bench.server_process import ServerSpec, free_port, start


def test_a_peer_without_pid_is_ready_at_its_first_answer(tmp_path: Path) -> None:
    port = free_port()
    spec = ServerSpec("static", [sys.executable, "-m", "http.server", str(port), "--bind",
                                 "127.0.0.1"], cwd=tmp_path, url=f"http://127.0.0.1:{port}")
    with start(spec, tmp_path / "logs", timeout=20) as server:
        assert httpx.get(server.url + "/").status_code == 200


def test_ours_with_two_workers_is_ready_when_both_answered(tmp_path: Path) -> None:
    spec = ours_spec(tmp_path / "data", workers=2, caches=False)
    with start(spec, tmp_path / "logs", timeout=60) as server:
        pids = set()
        for _ in range(200):  # both workers are up, so fresh connections soon reach both
            pids.add(httpx.get(server.url + "/healthz").json()["pid"])
            if len(pids) == 2:
                break
        assert len(pids) == 2
