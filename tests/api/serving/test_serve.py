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
