"""Fixtures of the /v1 API tests: a real server per module, on SQLite and on PostgreSQL.

Every test that uses ``api`` runs twice, once per backend. PostgreSQL comes from
``IMGPRO_TEST_DATABASE_URL`` (default: the local server); each server gets a fresh database,
dropped when the server stops. Without a reachable PostgreSQL the PostgreSQL half is skipped
with the reason, except under ``CI=true`` where it fails instead.

Tests share one server per backend and stay independent by using fresh emails, keys and client
IPs (the server trusts X-Forwarded-For from 127.0.0.1, so each test can be "another client").
"""

from __future__ import annotations

import asyncio
import html
import itertools
import os
import re
import secrets
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import httpx
import pytest

from tests.api.bulk_media import run as run_sql
from tests.conftest import RunningServer, start_server, stop_server

PG_URL = os.environ.get("IMGPRO_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", "postgresql"]
_ip_counter = itertools.count(1)


def fresh_ip() -> str:
    """A client address no other test uses (sent as X-Forwarded-For via a trusted proxy)."""
    n = next(_ip_counter) + os.getpid() % 50 * 10_000
    return f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def fresh_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def tiny_png(width: int = 8, height: int = 6, seed: int | None = None) -> bytes:
    """A small valid PNG; ``seed`` changes the pixels so contents differ."""
    from io import BytesIO

    from PIL import Image

    image = Image.new("RGB", (width, height), color=((seed or 0) % 256, 100, 150))
    out = BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def tiny_svg(width: int = 40, height: int = 30) -> bytes:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
            f'<rect width="{width}" height="{height}" fill="red"/></svg>').encode()


_FORM_TOKEN = re.compile(r'<form method="post"><input type="hidden" name="token" value="([^"]+)">')


def confirm_link(link: str, **headers: str) -> httpx.Response:
    """Do what a person does with an emailed link: open it (GET shows a confirmation page),
    then press its button (the form POSTs the token back to the same address)."""
    page = httpx.get(link, timeout=30)
    assert page.status_code == 200, page.text
    match = _FORM_TOKEN.search(page.text)
    assert match is not None, page.text
    return httpx.post(link, data={"token": html.unescape(match.group(1))},
                      headers=headers, timeout=30)


async def _admin(statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_URL.replace("postgresql+asyncpg://", "postgresql://"),
                                 timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def _database_url(name: str) -> str:
    parts = urlsplit(PG_URL)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def postgres_databases() -> Callable[[], tuple[str, str]]:
    """Make a fresh PostgreSQL database per call: (name, URL); the caller drops it."""
    try:
        asyncio.run(_admin("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        reason = f"PostgreSQL not reachable at {PG_URL} ({exc.__class__.__name__}: {exc})"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + "; under CI=true this is an error, not a skip")
        pytest.skip(reason + "; set IMGPRO_TEST_DATABASE_URL to run the PostgreSQL half")

    def make() -> tuple[str, str]:
        name = f"imgpro_test_{os.getpid()}_{secrets.token_hex(4)}"
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
        return name, _database_url(name)

    return make


@dataclass
class ApiServer:
    """A running ``imgpro serve`` plus helpers that speak its API."""

    server: RunningServer
    database_url: str
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.server.url, timeout=60)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def data_dir(self) -> Path:
        return self.server.data_dir

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, *, key: str | None = None, ip: str | None = None,
                **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        headers["X-Forwarded-For"] = ip or fresh_ip()
        return self.http.request(method, path, headers=headers, **kwargs)

    def new_key(self, email: str | None = None, **body: Any) -> dict[str, Any]:
        """Create a key for a fresh (or given) email from a fresh IP; returns the 201 body."""
        response = self.request("POST", "/v1/keys", json={"email": email or fresh_email(), **body})
        assert response.status_code == 201, response.text
        return dict(response.json())

    def upload(self, data: bytes | None = None, *, key: str | None = None, ip: str | None = None,
               filename: str = "image.png", **fields: str) -> httpx.Response:
        content = data if data is not None else tiny_png()
        files = {"file": (filename, content, "application/octet-stream")}
        return self.request("POST", "/v1/upload", key=key, ip=ip, files=files, data=fields)

    def sql(self, statement: str, **params: Any) -> list[Any]:
        """Run SQL on the server's database (to set up states like "a month of uploads used")."""
        return run_sql(self.database_url, statement, **params)

    def mails_to(self, address: str) -> list[EmailMessage]:
        """Messages in the server's outbox addressed to ``address``, oldest first."""
        folder = self.data_dir / "outbox"
        messages = []
        for path in sorted(folder.glob("*.eml")) if folder.exists() else []:
            message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
            if address in str(message["To"]):
                messages.append(message)
        return messages

    def links_to(self, address: str) -> list[str]:
        """The one-click links (/v1/verify?token=...) mailed to ``address``, oldest first."""
        links = []
        for message in self.mails_to(address):
            text = message.get_body(preferencelist=("plain",))
            assert text is not None
            links += re.findall(r"https?://\S+/v1/verify\?token=[\w.\-%=]+", text.get_content())
        return links

    def confirm(self, link: str) -> httpx.Response:
        """Open an emailed link and press the button of its page (see ``confirm_link``)."""
        response = confirm_link(link)
        assert response.status_code == 200, response.text
        return response


class _ImageOrigin(BaseHTTPRequestHandler):
    """``/go?to=<Location>`` answers 302 with exactly that Location header; anything else is
    a small PNG."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        query = parse_qs(urlsplit(self.path).query)
        if "to" in query:
            self.send_response(302)
            self.send_header("Location", query["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = tiny_png()
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def image_origin() -> Iterator[str]:
    """An HTTP server on loopback for imports: images, and redirects to any Location."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ImageOrigin)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@contextmanager
def _servers(backend: str, request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., ApiServer]]:
    """Start API servers on ``backend``; all are stopped (and their databases dropped) after."""
    started: list[tuple[ApiServer, str | None]] = []
    make_pg = request.getfixturevalue("postgres_databases") if backend == "postgresql" else None

    def factory(args: list[str] | None = None, **env: str) -> ApiServer:
        data_dir = tmp_path_factory.mktemp(f"api-{backend}")
        made = None
        if "IMGPRO_DATABASE_URL" in env:  # another process on an existing database
            database_url = env["IMGPRO_DATABASE_URL"]
        elif make_pg is not None:
            made, database_url = make_pg()
        else:
            database_url = f"sqlite+aiosqlite:///{data_dir / 'imgpro.db'}"
        full_env = {
            "IMGPRO_TRUSTED_PROXIES": "127.0.0.1",
            "IMGPRO_IMPORT_ALLOW_PRIVATE": "1",
            "IMGPRO_RETENTION_SWEEP_SECONDS": "0.5",
            "IMGPRO_DATABASE_URL": database_url,
            **env,
        }
        server = ApiServer(start_server(data_dir, full_env, args), database_url)
        started.append((server, made))
        return server

    try:
        yield factory
    finally:
        for api, _ in started:
            api.close()
            if api.server.process.poll() is None:
                stop_server(api.server)
        for _, database in started:
            if database is not None:
                asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def api_factory(backend: str, request: pytest.FixtureRequest,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., ApiServer]]:
    """Servers with other settings (``env`` adds IMGPRO_* variables), stopped after the module."""
    with _servers(backend, request, tmp_path_factory) as factory:
        yield factory


@pytest.fixture(scope="session")
def api(backend: str, request: pytest.FixtureRequest,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """The shared server of the whole run (one per backend): rate limits on, private import
    addresses allowed. Tests stay independent through fresh emails, keys and client IPs."""
    with _servers(backend, request, tmp_path_factory) as factory:
        yield factory()
