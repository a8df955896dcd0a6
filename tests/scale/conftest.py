"""Fixtures of the scale-out tests: S3 (moto) per test or per session, several real nodes.

Nodes are real ``imgpro serve`` processes started in parallel (each start imports libvips
and, for the API, migrates the database; in a row they would dominate the run time). The
shared PostgreSQL comes from the API tests' ``postgres_databases`` fixture: a fresh database
per use, dropped at the end, a skip without PostgreSQL, and a failure instead under CI=true.
"""

from __future__ import annotations

import concurrent.futures
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.api.conftest import postgres_databases  # noqa: F401 - the fixture, shared
from tests.conftest import (
    S3_ENV,
    MotoServer,
    RunningServer,
    start_moto,
    start_server,
    stop_server,
)

NodeFactory = Callable[..., list[RunningServer]]


def place(server: RunningServer, uid: str, data: bytes, team: str = "t") -> None:
    """Put an original where a node's local store keeps it (as ``imgpro put`` would)."""
    target = server.data_dir / "originals" / team / uid
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def s3_env(moto: MotoServer, bucket: str | None = None) -> dict[str, str]:
    """Environment of a node whose originals live in a (fresh, unless named) moto bucket."""
    bucket = bucket or f"imgpro-{uuid.uuid4().hex[:12]}"
    return {**S3_ENV, "IMGPRO_STORAGE_URL": f"s3://{bucket}/originals",
            "IMGPRO_S3_ENDPOINT_URL": moto.endpoint_url}


@pytest.fixture
def own_moto(tmp_path: Path) -> Iterator[MotoServer]:
    """A moto server of this test alone, which the test may stop (storage outage)."""
    moto = start_moto(tmp_path)
    yield moto
    moto.stop()


def start_nodes(dirs: list[Path], envs: list[dict[str, str]],
                args: list[str] | None = None) -> list[RunningServer]:
    """Start one node per (data dir, environment) in parallel; all or none are left running."""
    with concurrent.futures.ThreadPoolExecutor(len(envs)) as pool:
        futures = [pool.submit(start_server, d, env, args)
                   for d, env in zip(dirs, envs, strict=True)]
        concurrent.futures.wait(futures)
    started = [f.result() for f in futures if f.exception() is None]
    failed = [f.exception() for f in futures if f.exception() is not None]
    if failed:
        for server in started:
            stop_server(server)
        raise failed[0]  # type: ignore[misc]
    return started


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[NodeFactory]:
    """``nodes(env1, env2, ...)`` starts one node per environment, in parallel, each with its
    own data dir (as on separate machines); all are stopped at teardown."""
    started: list[RunningServer] = []

    def start(*envs: dict[str, str], args: list[str] | None = None) -> list[RunningServer]:
        dirs = [tmp_path / f"node{len(started) + i}" for i in range(len(envs))]
        servers = start_nodes(dirs, list(envs), args)
        started.extend(servers)
        return servers

    yield start
    for server in started:
        if server.process.poll() is None:
            stop_server(server)
