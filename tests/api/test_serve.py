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
