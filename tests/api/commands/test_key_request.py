"""``imgpro keys create``: the command against a real server, and its refusals."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.api.commands.test_bulk_upload import run_cli
from tests.conftest import RunningServer, free_port, running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("keys-cli") / "data") as running:
        yield running


def test_creates_a_working_key(server: RunningServer) -> None:
    email = f"cli-{uuid.uuid4().hex[:10]}@example.com"
    done = run_cli("keys", "create", "--email", email, "--name", "laptop", "--api", server.url)
    assert done.returncode == 0, done.stderr
    assert "shown once" in done.stdout and "status: active" in done.stdout
    key = next(word for word in done.stdout.split() if word.startswith("img_live_"))
    usage = httpx.get(f"{server.url}/v1/usage", headers={"Authorization": f"Bearer {key}"},
                      timeout=30)
    assert usage.status_code == 200 and usage.json()["plan"] == "free"


def test_refusals_exit_non_zero_with_the_api_message(server: RunningServer) -> None:
    done = run_cli("keys", "create", "--email", "not-an-email", "--api", server.url)
    assert done.returncode == 1 and done.stdout == ""
    assert "validation_error" in done.stderr and "email" in done.stderr
    unreachable = run_cli("keys", "create", "--email", "a@example.com",
                          "--api", f"http://127.0.0.1:{free_port()}")
    assert unreachable.returncode == 1 and "cannot reach" in unreachable.stderr
