"""Operator-facing behaviour: ``imgpro accounts``, start-up with several workers."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from api.cli import main
from tests.api.conftest import ApiServer, fresh_email


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def test_accounts_set_plan_and_list(api: ApiServer, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    # The command runs in this process (its start-up costs seconds on a busy machine), with
    # the server's settings: the same database and data dir.
    for name in ("IMGPRO_DATA_DIR", "IMGPRO_DATABASE_URL"):
        monkeypatch.setenv(name, api.server.env[name])

    def imgpro(*args: str) -> Ran:
        try:
            code = main(list(args))
        except SystemExit as exit_:
            code = int(exit_.code or 0)
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    email = fresh_email("operator")
    key = api.new_key(email.upper())["key"]  # emails are case-insensitive
    assert api.request("GET", "/v1/usage", key=key).json()["plan"] == "free"

    done = imgpro("accounts", "set-plan", email, "pro")
    assert done.returncode == 0, done.stderr
    usage = api.request("GET", "/v1/usage", key=key).json()
    assert (usage["plan"], usage["uploads_limit"], usage["storage_limit_bytes"]) == (
        "pro", 1000, 50 * 1024**3)
    assert api.upload(key=key).headers["X-Monthly-Uploads-Limit"] == "1000"

    listed = imgpro("accounts", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["email"]: row for row in map(json.loads, listed.stdout.splitlines())}
    assert rows[email]["plan"] == "pro" and rows[email]["key_count"] == 1
    assert rows[email]["storage_bytes"] > 0 and rows[email]["verified"] is False
    assert email in imgpro("accounts", "list").stdout
    missing = imgpro("accounts", "set-plan", fresh_email(), "pro")
    assert missing.returncode == 1 and "no account" in missing.stderr
    assert imgpro("accounts", "set-plan", email, "gold").returncode == 2


def test_workers_migrate_a_fresh_database_together(api_factory) -> None:  # type: ignore[no-untyped-def]
    """Two worker processes start on an empty database: migrations run once, both serve."""
    api = api_factory(args=["--workers", "2"])
    with ThreadPoolExecutor(4) as pool:
        created = list(pool.map(lambda _: api.request("POST", "/v1/keys",
                                                      json={"email": fresh_email()}), range(8)))
    assert {r.status_code for r in created} == {201}
    versions = api.sql("SELECT version_num FROM alembic_version")
    assert versions == [("0002",)]
