from __future__ import annotations

import httpx


def test_serve_prints_url_and_answers_healthz(server_factory) -> None:
    server = server_factory()
    assert server.url.startswith("http://127.0.0.1:")
    response = httpx.get(f"{server.url}/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["pid"] == server.process.pid


def test_the_serve_supervisor_imports_no_image_or_database_libraries() -> None:
    """`imgpro serve` stays up as the workers' supervisor: it must not carry libvips, numpy,
    SQLAlchemy, httpx or rich (the other subcommands' imports) in its memory."""
    import subprocess
    import sys

    heavy = ["pyvips", "numpy", "simplejpeg", "sqlalchemy", "httpx", "rich", "transformer",
             "mcp"]
    probe = ("import sys; from api.cli import build_parser; "
             "build_parser(serve_only=True).parse_args(['serve', '--port', '0']); "
             f"print([m for m in {heavy!r} if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, timeout=60)
    assert done.stdout.strip() == "[]"
    everything = probe.replace("serve_only=True", "serve_only=False")
    done = subprocess.run([sys.executable, "-c", everything], capture_output=True, text=True,
                          check=True, timeout=60)
    assert "pyvips" in done.stdout  # the full parser does import them: the check can fail


def test_the_mcp_sdk_is_loaded_only_when_mcp_is_used(tmp_path) -> None:
    """The MCP SDK (~0.3 s, ~26 MB) stays out of the CDN role entirely and out of an API
    worker until its first /mcp request (api.agents.http_endpoint imports it then)."""
    import subprocess
    import sys

    for role, loaded in (("cdn", "[]"), ("all", "['api.agents.http_endpoint']")):
        probe = ("import sys; from api.serving.app import create_app; from api.settings import "
                 f"Settings; create_app(Settings(role={role!r}, data_dir={str(tmp_path)!r})); "
                 "print([m for m in ('mcp', 'mcp_types', 'api.agents.tools', "
                 "'api.agents.http_endpoint') if m in sys.modules])")
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                              check=True, timeout=60)
        assert done.stdout.strip() == loaded, (role, done.stdout, done.stderr)
