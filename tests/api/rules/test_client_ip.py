from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.rules.client_ip import UNKNOWN_CLIENT, client_ip, parse_trusted_proxies
from api.settings import Settings


def scope(peer: str | None, *forwarded_for: str | bytes) -> dict[str, object]:
    headers = [(b"host", b"example.com")]
    for value in forwarded_for:
        raw = value if isinstance(value, bytes) else value.encode("latin-1")
        headers.append((b"x-forwarded-for", raw))
    return {
        "type": "http",
        "client": None if peer is None else (peer, 50123),
        "headers": headers,
    }


def test_peer_without_trusted_proxies_ignores_header() -> None:
    assert client_ip(scope("203.0.113.9", "198.51.100.1"), "") == "203.0.113.9"


def test_untrusted_peer_cannot_spoof() -> None:
    assert client_ip(scope("203.0.113.9", "198.51.100.1"), "10.0.0.0/8") == "203.0.113.9"


def test_trusted_peer_names_the_client() -> None:
    assert client_ip(scope("10.0.0.5", "198.51.100.1"), "10.0.0.0/8") == "198.51.100.1"


def test_walks_from_the_right_skipping_trusted_hops() -> None:
    # client -> cdn (192.0.2.7, trusted) -> lb (10.0.0.5, trusted) -> us
    s = scope("10.0.0.5", "6.6.6.6, 198.51.100.1, 192.0.2.7")
    assert client_ip(s, "10.0.0.0/8, 192.0.2.7") == "198.51.100.1"


def test_client_supplied_left_entries_are_not_believed() -> None:
    # The client sent "X-Forwarded-For: 1.1.1.1"; our proxy appended the real address.
    assert client_ip(scope("10.0.0.5", "1.1.1.1, 198.51.100.1"), "10.0.0.5") == "198.51.100.1"


def test_several_header_lines_are_one_list() -> None:
    s = scope("10.0.0.5", "6.6.6.6", "198.51.100.1, 10.0.0.9")
    assert client_ip(s, "10.0.0.0/8") == "198.51.100.1"


def test_all_hops_trusted_gives_leftmost() -> None:
    assert client_ip(scope("10.0.0.5", "10.1.1.1, 10.2.2.2"), "10.0.0.0/8") == "10.1.1.1"


def test_trusted_peer_without_header_is_the_client() -> None:
    assert client_ip(scope("10.0.0.5"), "10.0.0.0/8") == "10.0.0.5"


def test_ipv6_peer_and_entries() -> None:
    s = scope("fd00::1", "2001:db8::42, fd00::2")
    assert client_ip(s, "fd00::/8") == "2001:db8::42"


def test_ipv4_mapped_peer_is_unmapped_and_matches_ipv4_rule() -> None:
    assert client_ip(scope("::ffff:10.0.0.5", "198.51.100.1"), "10.0.0.0/8") == "198.51.100.1"
    assert client_ip(scope("::ffff:203.0.113.9"), "") == "203.0.113.9"


def test_entries_with_ports_and_brackets() -> None:
    assert client_ip(scope("10.0.0.5", "198.51.100.1:4711"), "10.0.0.5") == "198.51.100.1"
    assert client_ip(scope("10.0.0.5", "[2001:db8::7]:4711"), "10.0.0.5") == "2001:db8::7"


@pytest.mark.parametrize(
    "header",
    [
        "",
        ",,,",
        "unknown",
        "not-an-ip",
        "999.1.1.1",
        "1.2.3.4, garbage",
        "[::1",
        "[]:80",
        "\x00\x01\x02",
        "a" * 10_000,
        ", ".join(["1.2.3.4"] * 5_000),
        b"\xff\xfe\xfd",
        "1.2.3.4:notaport:99",
        '"[2001:db8::1]:80"',
        "%%%::%%%",
    ],
)
def test_garbage_header_never_raises_and_never_trusts_garbage(header: str | bytes) -> None:
    result = client_ip(scope("10.0.0.5", header), "10.0.0.0/8")
    # Either a real address from the header or the last verified hop (the proxy).
    assert result in {"10.0.0.5", "1.2.3.4", "2001:db8::1"}


def test_garbage_stops_the_walk_at_the_last_verified_hop() -> None:
    s = scope("10.0.0.5", "198.51.100.1, garbage, 10.0.0.7")
    assert client_ip(s, "10.0.0.0/8") == "10.0.0.7"


def test_missing_or_odd_peer() -> None:
    assert client_ip({"type": "http", "headers": []}, "") == UNKNOWN_CLIENT
    assert client_ip(scope(None, "1.2.3.4"), "0.0.0.0/0") == UNKNOWN_CLIENT
    assert client_ip(scope("not-an-ip"), "") == UNKNOWN_CLIENT


def test_parse_trusted_proxies() -> None:
    nets = parse_trusted_proxies(" 10.0.0.0/8 ,192.0.2.7,, ::1, ::ffff:172.16.0.0/108 ")
    assert [str(n) for n in nets] == ["10.0.0.0/8", "192.0.2.7/32", "::1/128", "172.16.0.0/12"]
    assert parse_trusted_proxies("") == ()
    with pytest.raises(ValueError, match="nope"):
        parse_trusted_proxies("10.0.0.0/8, nope")


def test_settings_refuse_a_bad_trusted_proxies_value() -> None:
    with pytest.raises(ValidationError):
        Settings(trusted_proxies="10.0.0.0/33")
    assert Settings(trusted_proxies="10.0.0.0/8").trusted_proxies == "10.0.0.0/8"
