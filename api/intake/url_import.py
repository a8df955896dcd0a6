"""Fetch an image from a client-supplied URL without letting the URL reach our own network (SSRF).

Import lets anyone make this server send a GET to a URL of their choice. Left unguarded, that
reads cloud metadata (169.254.169.254), admin ports on loopback and hosts on the private network,
and returns them as an "image". The rules, all of which hold for every redirect hop too:

- only ``http``/``https``; no credentials in the URL (``http://trusted@evil/`` tricks);
- the host name is resolved ONCE, every address it resolves to must be public
  (:func:`is_public_address`; IPv4-mapped, 6to4 and NAT64 IPv6 forms are unwrapped and judged by
  the IPv4 address inside), and the connection is made to exactly that checked address. The name
  is never handed to a resolver again, so DNS rebinding between check and connect cannot work.
  httpx has no resolver hook, so each request goes to ``http(s)://<checked-ip>:port/...`` with the
  original ``Host`` header and, for https, the original name as TLS SNI and for certificate
  verification (httpcore's ``sni_hostname`` extension);
- odd spellings of addresses (``2130706433``, ``0x7f.1``, ``[::ffff:127.0.0.1]``) need no special
  case: the resolver turns them into the address they mean, and that address is what is judged;
- at most :data:`MAX_REDIRECTS` redirects, followed by hand, each re-checked as above;
- a connect timeout and a total deadline over everything (DNS, redirects, a trickling body);
- the body is read as it streams and abandoned one byte past ``max_bytes``; a declared
  ``Content-Length`` above it is refused before reading.

``allow_private=True`` (``IMGPRO_IMPORT_ALLOW_PRIVATE``, used by tests) lifts only the address rule.

Exceptions (the API maps them to its error codes)::

    ImportFetchError
     +-- InvalidImportUrl   the URL (or a redirect target) is not acceptable: scheme, credentials,
     |                      malformed, or an address that is not public
     +-- SourceUnreachable  DNS failure, connection error, timeout, non-2xx, too many redirects
     +-- FetchTooLarge      more than max_bytes (declared or streamed)
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass

import httpx

__all__ = [
    "MAX_REDIRECTS",
    "SourceUnreachable",
    "FetchTooLarge",
    "FetchedImage",
    "ImportFetchError",
    "InvalidImportUrl",
    "fetch_image",
    "is_public_address",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_REDIRECTS = 5
MAX_URL_LENGTH = 2048
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")
_REQUEST_HEADERS = {
    "User-Agent": "imgpro-import/1",
    "Accept": "image/*, */*;q=0.5",
    # Images are compressed already; asking for identity keeps a gzip bomb out of the picture.
    "Accept-Encoding": "identity",
}


@dataclass(frozen=True)
class FetchedImage:
    data: bytes
    content_type: str | None
    """The server's media type, lowercased, without parameters. Not to be trusted for typing."""
    final_url: str
    """The URL that answered after redirects (with its host name, not the connected address)."""


class ImportFetchError(Exception):
    """Base of every reason an import URL could not be turned into bytes."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidImportUrl(ImportFetchError):
    """The URL or a redirect target is refused by the rules, before any connection to it."""


class SourceUnreachable(ImportFetchError):
    """The remote side did not deliver: DNS, connection, timeout, HTTP status, redirects."""


class FetchTooLarge(ImportFetchError):
    """The body is larger than allowed."""


async def fetch_image(
    url: str,
    *,
    max_bytes: int,
    allow_private: bool,
    connect_timeout: float = 5,
    total_timeout: float = 30,
    allow_networks: Collection[IPNetwork] = (),
    ssl_context: ssl.SSLContext | None = None,
) -> FetchedImage:
    """GET ``url`` under the rules of the module doc and return at most ``max_bytes`` of body.

    ``allow_networks`` lets an operator (or a test) treat chosen non-public networks as allowed
    while every other address stays under the rule. ``ssl_context`` replaces the default trust
    store (certifi) for https, e.g. with a private CA; certificates are always verified.
    """
    fetch = _Fetch(
        max_bytes=max_bytes,
        allow_private=allow_private,
        allow_networks=tuple(allow_networks),
        timeout=httpx.Timeout(total_timeout, connect=connect_timeout),
        verify=ssl_context or True,
    )
    try:
        async with asyncio.timeout(total_timeout):
            return await fetch.run(url)
    except TimeoutError:
        raise SourceUnreachable(f"the fetch did not complete within {total_timeout:g} s") from None


def is_public_address(address: IPAddress) -> bool:
    """True for globally routable unicast addresses: what an import may connect to.

    IPv6 forms that carry an IPv4 address (``::ffff:a.b.c.d``, NAT64 ``64:ff9b::a.b.c.d``,
    6to4 ``2002:AABB:CCDD::``) are judged by the IPv4 address they lead to.
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_public_address(address.ipv4_mapped)
        if address in _NAT64_PREFIX:
            return is_public_address(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address.sixtofour is not None and not is_public_address(address.sixtofour):
            return False
        if address.teredo is not None:
            return False
        if address.is_site_local:
            return False
    return address.is_global and not (
        address.is_multicast
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_unspecified
    )


def parse_import_url(text: str) -> httpx.URL:
    """The URL if it is an absolute http(s) URL with a host and no credentials; else refused."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidImportUrl("the URL is empty")
    text = text.strip()
    if len(text) > MAX_URL_LENGTH:
        raise InvalidImportUrl(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        url = httpx.URL(text)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise InvalidImportUrl(f"the URL is malformed: {exc}") from None
    if url.scheme not in ("http", "https"):
        raise InvalidImportUrl("only http and https URLs can be imported")
    if not url.raw_host:
        raise InvalidImportUrl("the URL has no host")
    try:
        url.host  # noqa: B018 - decodes an IDNA host: "xn--" alone is malformed
    except UnicodeError as exc:
        raise InvalidImportUrl(f"the URL's host is malformed: {exc}") from None
    if url.userinfo:
        raise InvalidImportUrl("URLs with credentials (user@host) are not accepted")
    return url


class _Fetch:
    """One fetch: its limits and the addresses it has resolved (each host once)."""

    def __init__(
        self,
        *,
        max_bytes: int,
        allow_private: bool,
        allow_networks: tuple[IPNetwork, ...],
        timeout: httpx.Timeout,
        verify: ssl.SSLContext | bool,
    ) -> None:
        self.max_bytes = max_bytes
        self.verify = verify
        self.allow_private = allow_private
        self.allow_networks = allow_networks
        self.timeout = timeout
        self._resolved: dict[tuple[str, int], list[IPAddress]] = {}

    async def run(self, first_url: str) -> FetchedImage:
        url = parse_import_url(first_url)
        for _hop in range(MAX_REDIRECTS + 1):
            addresses = await self._checked_addresses(url)
            async with self._get(url, addresses) as response:
                if response.status_code in _REDIRECT_STATUSES:
                    url = self._redirect_target(url, response)
                    continue
                if not 200 <= response.status_code < 300:
                    raise SourceUnreachable(f"the server answered HTTP {response.status_code}")
                data = await self._read_body(response)
                media_type = response.headers.get("content-type", "").partition(";")[0]
                return FetchedImage(data, media_type.strip().lower() or None, str(url))
        raise SourceUnreachable(f"more than {MAX_REDIRECTS} redirects")

    async def _checked_addresses(self, url: httpx.URL) -> list[IPAddress]:
        host = url.raw_host.decode("ascii")
        port = url.port or (443 if url.scheme == "https" else 80)
        key = (host, port)
        if key not in self._resolved:
            addresses = await _resolve(host, port)
            refused = [a for a in addresses if not self._address_allowed(a)]
            if refused:
                # Refuse the host if any answer is private: a name that mixes public and
                # internal answers has no business being imported from.
                raise InvalidImportUrl(
                    f"{url.host} resolves to a private, loopback or reserved address"
                )
            self._resolved[key] = addresses
        return self._resolved[key]

    def _address_allowed(self, address: IPAddress) -> bool:
        if self.allow_private:
            return True
        if any(address.version == net.version and address in net for net in self.allow_networks):
            return True
        return is_public_address(address)

    @contextlib.asynccontextmanager
    async def _get(
        self, url: httpx.URL, addresses: list[IPAddress]
    ) -> AsyncIterator[httpx.Response]:
        """Stream a GET of ``url`` from the first of ``addresses`` that accepts a connection.

        A fresh client per hop: no connection made for one host name is ever reused for another.
        """
        headers = {**_REQUEST_HEADERS, "Host": url.netloc.decode("ascii")}
        extensions = {"sni_hostname": url.raw_host.decode("ascii")} if url.scheme == "https" else {}
        last_error: Exception | None = None
        for address in addresses:
            pinned = url.copy_with(host=str(address))
            try:
                async with (
                    httpx.AsyncClient(
                        timeout=self.timeout, verify=self.verify, trust_env=False,
                        follow_redirects=False,
                    ) as client,
                    client.stream("GET", pinned, headers=headers, extensions=extensions) as resp,
                ):
                    yield resp
                    return
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                last_error = exc  # try the host's next address
            except httpx.TimeoutException:
                raise SourceUnreachable("the server did not answer in time") from None
            except httpx.HTTPError as exc:
                raise SourceUnreachable(f"the fetch failed: {_describe(exc)}") from None
            except (httpx.InvalidURL, UnicodeError) as exc:
                # httpx builds the next request of every 3xx, followed or not, and a Location
                # such as "http:\\host/x" or "http://xn--/" fails there with exceptions that
                # are not HTTPError (InvalidURL, idna's UnicodeError).
                raise InvalidImportUrl(f"a redirect points to a malformed URL: {exc}") from None
        raise SourceUnreachable(f"could not connect to {url.host}: {_describe(last_error)}")

    def _redirect_target(self, url: httpx.URL, response: httpx.Response) -> httpx.URL:
        location = response.headers.get("location")
        if not location:
            raise SourceUnreachable(f"HTTP {response.status_code} redirect without a Location")
        try:
            target = url.join(location)
        except (httpx.InvalidURL, ValueError, TypeError):
            raise InvalidImportUrl("a redirect points to a malformed URL") from None
        return parse_import_url(str(target))

    async def _read_body(self, response: httpx.Response) -> bytes:
        declared = response.headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise FetchTooLarge(f"the image is larger than {self.max_bytes} bytes")
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise SourceUnreachable(
                f"the server sent a {encoding}-encoded body; identity was asked")
        body = bytearray()
        try:
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > self.max_bytes:
                    raise FetchTooLarge(f"the image is larger than {self.max_bytes} bytes")
        except httpx.TimeoutException:
            raise SourceUnreachable("the server stopped sending in time") from None
        except httpx.HTTPError as exc:
            raise SourceUnreachable(f"the download broke off: {_describe(exc)}") from None
        return bytes(body)


async def _resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` stands for, resolved once through the event loop's getaddrinfo."""
    literal = _address_literal(host)
    if literal is not None:
        return [literal]
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise SourceUnreachable(f"cannot resolve {host}: {exc}") from None
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = _address_literal(str(sockaddr[0]))
        if address is not None and address not in addresses:
            addresses.append(address)
    if not addresses:
        raise SourceUnreachable(f"cannot resolve {host}")
    return addresses


def _address_literal(text: str) -> IPAddress | None:
    """A canonical IP address for a literal; IPv4-mapped IPv6 becomes the IPv4 address."""
    try:
        address = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _describe(exc: Exception | None) -> str:
    if exc is None:
        return "no address"
    return str(exc) or type(exc).__name__
