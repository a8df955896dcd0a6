"""Hypothesis strategies for the input a hostile or careless client can send the API.

Not random noise: values are built around what the server has to parse. Field names are
mostly the real ones (so the parsers behind them run), values are of every JSON type with
the awkward cases weighted in: nesting far deeper than orjson writes, integers past 64 bits,
NaN and infinities, booleans where numbers go, control and line-separator characters, lone
surrogates, strings at and past the length limits. Cursors are base64 of such JSON.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

FIELD_NAMES = [
    "email", "name", "abilities", "url", "tags", "namespace", "public", "external_id", "date",
    "ttl", "metadata", "ids", "update", "tag_mode", "id", "src", "width", "file", "author",
    "s", "q", "cursor", "limit",
]
ODD_STRINGS = [
    "", " ", "\x00", "a\x00b", "\n", "\r\n", "\u2028", "\x85", "\x1b[31m", "\ud800", "\udfff",
    "x" * 51, "x" * 256, "n" * 5000, "1e400", "-0", "NaN", "true", "null", "[]", "{}",
    "2020-13-45", "2020-02-30T25:61:00", "9" * 40, "-9223372036854775809", "0x10",
    "../../etc/passwd", "%00", "%2F", "<script>alert(1)</script>", "😀" * 70, "ǅ", "ﬃ",
    "read,write", "read,admin", "a,b,,c", "Bad Namespace", "ok-namespace", "all", "any",
    "add", "remove", "replace", "http://127.0.0.1:1/", "http:\\\\host/x", "http://xn--/",
    "ftp://host/x", "javascript:alert(1)", "you@example.com", "a@", "@b", "a" * 64 + "@x.io",
]
ODD_INTEGERS = [0, 1, -1, 2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 2**64,
                10**30, 3599, 3600, 253_402_300_800]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(ODD_INTEGERS),
    st.integers(),
    st.floats(),  # NaN and infinities too (json.dumps writes them; the server must refuse)
    st.sampled_from(ODD_STRINGS),
    st.text(max_size=30),
)


@dataclass(frozen=True)
class Deep:
    """A value nested ``depth`` arrays (or objects) deep, written out by ``dumps`` without
    recursion: Python's own encoders stop near 1,000 levels, orjson reads 1,024."""

    depth: int
    inner: Any
    as_dict: bool


deep_values = st.builds(Deep, st.integers(1, 1100), scalars, st.booleans())
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
values = st.one_of(json_values, json_values, deep_values)
json_objects = st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=12), values,
                               max_size=6)


def dumps(value: Any) -> bytes:
    """JSON as a careless client writes it: NaN and infinities allowed, lone surrogates
    escaped, ``Deep`` values as deep as they say."""
    return _text(value).encode()


def _text(value: Any) -> str:
    if isinstance(value, Deep):
        opening, closing = ('{"k":', "}") if value.as_dict else ("[", "]")
        return opening * value.depth + _text(value.inner) + closing * value.depth
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_text(v) for v in value) + "]"
    return json.dumps(value, allow_nan=True)


def _deep_text(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


json_bodies = st.one_of(
    json_objects.map(dumps),
    json_objects.map(dumps),
    json_values.map(dumps),  # not an object
    st.integers(1, 1100).map(_deep_text),
    st.binary(max_size=64),
    st.sampled_from([b"", b"{", b'{"a":1}{"b":2}', b'{"a":1e400}', b'{"a":"\\ud800"}',
                     b"\xef\xbb\xbf{}", b'{"a":1,"a":2}']),
)


def _cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(dumps(value)).rstrip(b"=").decode()


cursors = st.one_of(
    st.fixed_dictionaries({"s": scalars, "q": scalars}).map(_cursor),
    json_values.map(_cursor),
    st.sampled_from(ODD_STRINGS),
    st.text(max_size=40),
)
query_params = st.fixed_dictionaries({}, optional={
    "cursor": cursors,
    "limit": st.sampled_from(["0", "1", "50", "100", "101", "-1", "1e2", "9" * 40, "", " 5"])
    | st.text(max_size=5),
    "namespace": st.sampled_from(ODD_STRINGS) | st.text(max_size=70),
    "tags": st.sampled_from(ODD_STRINGS) | st.text(max_size=70),
    "tag_mode": st.sampled_from(["all", "any", "", "ALL", "none"]) | st.text(max_size=5),
})
form_values = st.one_of(st.sampled_from(ODD_STRINGS), st.text(max_size=60), values.map(
    lambda v: dumps(v).decode()))
form_fields = st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(min_size=1, max_size=70),
                              form_values, max_size=8)
