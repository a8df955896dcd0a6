"""fetch_image against real HTTP servers on loopback (127.0.0.1 and 127.0.0.2); no internet."""

from __future__ import annotations

import ipaddress
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import trustme

from api.intake.url_import import (
    MAX_REDIRECTS,
    FetchedImage,
    FetchTooLarge,
    ImportFetchError,
    InvalidImportUrl,
    SourceUnreachable,
    fetch_image,
    is_public_address,
)

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8  # the bytes are what matters, not validity
CHUNK = b"\0" * 65536


@dataclass
class ServerState:
    hits: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    endless_sent: int = 0
    endless_done: threading.Event = field(default_factory=threading.Event)


class Handler(BaseHTTPRequestHandler):
    """Routes for every behaviour under test; HTTP/1.0, so bodies may be close-delimited."""

    server: OriginServer
    timeout = 20  # a stuck client must not keep a handler thread forever

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        state = self.server.state
        state.hits.append(self.path)
        state.hosts.append(self.headers.get("Host", ""))
        path, _, query = self.path.partition("?")
        if path == "/image":
            self._send(200, PNG, "image/png; charset=binary")
        elif path.startswith("/hops/"):
            left = int(path.rsplit("/", 1)[1])  # redirects still to go
            self._redirect("/image" if left <= 1 else f"/hops/{left - 1}")
        elif path == "/to":
            self._redirect(query)
        elif path == "/relative":
            self._redirect("image", status=307)
        elif path == "/no-location":
            self._send(302, b"", None)
        elif path == "/missing":
            self._send(404, b"not here", "text/plain")
        elif path == "/broken":
            self._send(500, b"oops", "text/plain")
        elif path == "/endless":
            self._endless()
        elif path == "/declared-huge":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(10**12))
            self.end_headers()
            self.wfile.write(PNG)
            state.stop.wait(10)
        elif path == "/slow":
            state.stop.wait(10)
            self._send(200, PNG, "image/png")
        elif path == "/trickle":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            for _ in range(200):
                if state.stop.wait(0.1):
                    break
                self.wfile.write(b"x")
                self.wfile.flush()
        elif path == "/gzip":
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", "3")
            self.end_headers()
            self.wfile.write(b"abc")
        else:
            self._send(400, b"unknown route", "text/plain")

    def _send(self, status: int, body: bytes, content_type: str | None) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str, status: int = 302) -> None:
        self.send_response(status)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _endless(self) -> None:
        state = self.server.state
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()
        try:
            while state.endless_sent < 2 * 1024**3:  # bounded even if the client misbehaves
                self.wfile.write(CHUNK)
                state.endless_sent += len(CHUNK)
        except OSError:
            pass  # the client hung up: what the test wants to see
        finally:
            state.endless_done.set()


class OriginServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str) -> None:
        super().__init__((host, 0), Handler)
        self.host = host
        self.state = ServerState()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self, path: str, host: str | None = None, scheme: str = "http") -> str:
        return f"{scheme}://{host or self.host}:{self.port}{path}"


def _serve(host: str, tls: ssl.SSLContext | None = None) -> Iterator[OriginServer]:
    server = OriginServer(host)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.state.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def server() -> Iterator[OriginServer]:
    yield from _serve("127.0.0.1")


@pytest.fixture(scope="module")
def tls_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_server(tls_ca: trustme.CA) -> Iterator[OriginServer]:
    """https on 127.0.0.1 with a certificate for the name ``localhost`` only (not the IP)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_ca.issue_cert("localhost").configure_cert(context)
    yield from _serve("127.0.0.1", context)


@pytest.fixture
def outside() -> Iterator[OriginServer]:
    """A server on 127.0.0.2 that tests treat as "the public internet" via allow_networks."""
    yield from _serve("127.0.0.2")


OUTSIDE = (ipaddress.ip_network("127.0.0.2/32"),)


async def fetch(url: str, **kwargs: object) -> FetchedImage:
    options: dict[str, object] = {"max_bytes": 1_000_000, "allow_private": True}
    options.update(kwargs)
    return await fetch_image(url, **options)  # type: ignore[arg-type]


# -- what works -----------------------------------------------------------------------------


async def test_fetches_the_body_and_media_type(server: OriginServer) -> None:
    result = await fetch(server.url("/image"))
    assert result == FetchedImage(PNG, "image/png", server.url("/image"))
    assert server.state.hits == ["/image"]


async def test_host_header_keeps_the_name_while_connecting_to_the_checked_address(
    server: OriginServer,
) -> None:
    url = server.url("/image", host="localhost")
    result = await fetch(url)
    assert result.final_url == url
    assert server.state.hosts == [f"localhost:{server.port}"]


async def test_follows_up_to_five_redirects(server: OriginServer) -> None:
    result = await fetch(server.url(f"/hops/{MAX_REDIRECTS}"))
    assert result.data == PNG
    assert result.final_url == server.url("/image")
    assert len(server.state.hits) == MAX_REDIRECTS + 1


async def test_relative_redirect(server: OriginServer) -> None:
    assert (await fetch(server.url("/relative"))).final_url == server.url("/image")


async def test_allow_networks_admits_only_the_listed_network(outside: OriginServer) -> None:
    result = await fetch(outside.url("/image"), allow_private=False, allow_networks=OUTSIDE)
    assert result.data == PNG


async def test_https_verifies_the_certificate_against_the_name_not_the_address(
    tls_server: OriginServer, tls_ca: trustme.CA
) -> None:
    """We connect to 127.0.0.1, yet SNI and verification use ``localhost`` from the URL."""
    client_context = ssl.create_default_context()
    tls_ca.configure_trust(client_context)
    url = tls_server.url("/image", host="localhost", scheme="https")
    result = await fetch(url, ssl_context=client_context)
    assert result == FetchedImage(PNG, "image/png", url)
    assert tls_server.state.hosts == [f"localhost:{tls_server.port}"]


async def test_https_refuses_a_certificate_for_another_name(
    tls_server: OriginServer, tls_ca: trustme.CA
) -> None:
    client_context = ssl.create_default_context()
    tls_ca.configure_trust(client_context)
    with pytest.raises(SourceUnreachable):  # the certificate names localhost, not 127.0.0.1
        await fetch(tls_server.url("/image", scheme="https"), ssl_context=client_context)


async def test_https_refuses_an_untrusted_certificate(tls_server: OriginServer) -> None:
    with pytest.raises(SourceUnreachable):
        await fetch(tls_server.url("/image", host="localhost", scheme="https"))
    assert tls_server.state.hits == []


# -- redirects -------------------------------------------------------------------------------


async def test_more_than_five_redirects_is_refused(server: OriginServer) -> None:
    with pytest.raises(SourceUnreachable, match="redirects"):
        await fetch(server.url(f"/hops/{MAX_REDIRECTS + 1}"))
    assert "/image" not in server.state.hits
    assert len(server.state.hits) == MAX_REDIRECTS + 1


async def test_redirect_to_a_private_address_is_refused(
    outside: OriginServer, server: OriginServer
) -> None:
    with pytest.raises(InvalidImportUrl):
        await fetch(outside.url(f"/to?{server.url('/image')}"), allow_private=False,
                    allow_networks=OUTSIDE)
    assert outside.state.hits == [f"/to?{server.url('/image')}"]
    assert server.state.hits == []  # never contacted


async def test_redirect_to_a_name_of_a_private_address_is_refused(
    outside: OriginServer, server: OriginServer
) -> None:
    target = server.url("/image", host="localhost")
    with pytest.raises(InvalidImportUrl):
        await fetch(outside.url(f"/to?{target}"), allow_private=False, allow_networks=OUTSIDE)
    assert server.state.hits == []


@pytest.mark.parametrize("target", ["file:///etc/passwd", "gopher://127.0.0.2/x", "ftp://a/b"])
async def test_redirect_to_another_scheme_is_refused(outside: OriginServer, target: str) -> None:
    with pytest.raises(InvalidImportUrl):
        await fetch(outside.url(f"/to?{target}"), allow_private=False, allow_networks=OUTSIDE)


@pytest.mark.parametrize("target", ["http:\\\\host/x", "http:\\host/x", "http://xn--/",
                                    "http://[::1", "http://2001:db8::1/"])
async def test_redirect_to_a_malformed_location_is_an_import_error(
        server: OriginServer, target: str) -> None:
    """httpx builds the next request of every 3xx (followed or not) and fails there with
    exceptions that are no HTTPError; each must still be one of ours (the API's 400)."""
    with pytest.raises(ImportFetchError):
        await fetch(server.url(f"/to?{target}"))


async def test_redirect_without_location_fails(server: OriginServer) -> None:
    with pytest.raises(SourceUnreachable, match="Location"):
        await fetch(server.url("/no-location"))


# -- the address rule --------------------------------------------------------------------------


async def test_loopback_is_refused_by_default(server: OriginServer) -> None:
    with pytest.raises(InvalidImportUrl):
        await fetch(server.url("/image"), allow_private=False)
    assert server.state.hits == []


async def test_a_name_resolving_to_loopback_is_refused_by_default(server: OriginServer) -> None:
    with pytest.raises(InvalidImportUrl):
        await fetch(server.url("/image", host="localhost"), allow_private=False)
    assert server.state.hits == []


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "127.1", "[::ffff:127.0.0.1]",
                                  "[::ffff:7f00:1]"])
async def test_odd_spellings_of_loopback_are_refused(server: OriginServer, host: str) -> None:
    url = server.url("/image", host=host)
    with pytest.raises(InvalidImportUrl):
        await fetch(url, allow_private=False)
    assert server.state.hits == []
    # The same spelling does reach the loopback server once the rule is lifted: the refusal
    # above came from the address it means, not from failing to parse it.
    assert (await fetch(url, allow_private=True)).data == PNG


async def test_octal_spelling_is_refused_as_malformed(server: OriginServer) -> None:
    with pytest.raises(InvalidImportUrl):
        await fetch(server.url("/image", host="0177.0.0.1"), allow_private=True)
    assert server.state.hits == []


@pytest.mark.parametrize(
    "url",
    ["http://[::1]/", "http://0.0.0.0/", "http://[::]/", "http://10.1.2.3/", "http://192.168.0.1/",
     "http://172.16.5.4/", "http://169.254.169.254/latest/meta-data/", "http://100.64.0.1/",
     "http://224.0.0.1/", "http://255.255.255.255/", "http://[fe80::1]/", "http://[fd00::1]/",
     "http://[ff02::1]/", "http://[64:ff9b::a9fe:a9fe]/", "http://[2002:7f00:1::]/",
     "http://[::127.0.0.1]/", "http://240.0.0.1/", "http://198.18.0.1/"],
)
async def test_non_public_addresses_are_refused_without_connecting(url: str) -> None:
    with pytest.raises(InvalidImportUrl):
        await fetch(url, allow_private=False, connect_timeout=0.5, total_timeout=2)


@pytest.mark.parametrize(
    ("address", "public"),
    [("8.8.8.8", True), ("2606:4700::1111", True), ("::ffff:8.8.8.8", True),
     ("64:ff9b::808:808", True), ("2002:808:808::1", True), ("127.0.0.1", False),
     ("::ffff:10.0.0.1", False), ("64:ff9b::7f00:1", False), ("2002:a00:1::", False),
     ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False), ("224.0.1.1", False), ("ff0e::1", False),
     ("fec0::1", False), ("100.64.0.1", False), ("192.0.2.1", False), ("2001:db8::1", False)],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


# -- what is not a URL we fetch -----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://example.com/a.png", "gopher://example.com:70/_x",
     "data:image/png;base64,iVBORw0KGgo=", "javascript:alert(1)", "dict://127.0.0.1:11211/",
     "", "   ", "not a url", "//example.com/a.png", "http://", "http:///a.png",
     "http://user:pass@example.com/a.png", "http://example.com@127.0.0.1/",
     "http://" + "a" * 3000 + ".com/"],
)
async def test_unacceptable_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidImportUrl):
        await fetch(url, allow_private=True)


async def test_userinfo_is_refused_even_when_private_is_allowed(server: OriginServer) -> None:
    with pytest.raises(InvalidImportUrl, match="credentials"):
        await fetch(f"http://u:p@127.0.0.1:{server.port}/image", allow_private=True)
    assert server.state.hits == []


# -- limits and failures -----------------------------------------------------------------------


async def test_endless_body_is_abandoned_past_the_limit(server: OriginServer) -> None:
    with pytest.raises(FetchTooLarge):
        await fetch(server.url("/endless"), max_bytes=1_000_000)
    # The server notices we hung up; without that its writes would block (and be bounded at
    # 2 GiB only as a safety net for a broken client).
    assert server.state.endless_done.wait(15), "client kept the connection open"
    assert server.state.endless_sent < 256 * 1024**2


async def test_body_at_exactly_the_limit_is_accepted(server: OriginServer) -> None:
    assert (await fetch(server.url("/image"), max_bytes=len(PNG))).data == PNG
    with pytest.raises(FetchTooLarge):
        await fetch(server.url("/image"), max_bytes=len(PNG) - 1)


async def test_declared_oversize_is_refused_before_reading(server: OriginServer) -> None:
    with pytest.raises(FetchTooLarge):
        await fetch(server.url("/declared-huge"), total_timeout=5)


async def test_slow_server_times_out(server: OriginServer) -> None:
    with pytest.raises(SourceUnreachable):
        await fetch(server.url("/slow"), total_timeout=0.5)


async def test_trickling_body_hits_the_total_deadline(server: OriginServer) -> None:
    with pytest.raises(SourceUnreachable, match="within"):
        await fetch(server.url("/trickle"), total_timeout=1)


@pytest.mark.parametrize("path", ["/missing", "/broken"])
async def test_error_status_fails(server: OriginServer, path: str) -> None:
    with pytest.raises(SourceUnreachable, match="HTTP"):
        await fetch(server.url(path))


async def test_encoded_body_is_refused(server: OriginServer) -> None:
    with pytest.raises(SourceUnreachable, match="gzip"):
        await fetch(server.url("/gzip"))


async def test_connection_refused_fails(server: OriginServer) -> None:
    port = server.port
    _close_listener(server)
    with pytest.raises(SourceUnreachable, match="connect"):
        await fetch(f"http://127.0.0.1:{port}/image")


def test_every_error_shares_one_base() -> None:
    for exc in (InvalidImportUrl, SourceUnreachable, FetchTooLarge):
        assert issubclass(exc, ImportFetchError)
    assert SourceUnreachable("nope").message == "nope"


def _close_listener(server: OriginServer) -> None:
    server.shutdown()
    server.server_close()
