"""The client-settable fields of a media, parsed and checked the same way everywhere.

Upload (multipart strings), import (JSON values) and PATCH (JSON values) all go through
``parse_media_fields``; it returns only the fields the client sent, normalised, or raises one
422 listing every bad field. Any field that is not reserved is custom metadata, as the
reference says for upload form fields; import and PATCH treat unknown top-level keys the same
way, so the three endpoints accept the same vocabulary.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from api.errors import InvalidRequest
from api.rules.plans import MIN_TTL

MAX_TAGS = 10
MAX_TAG_LENGTH = 50
MAX_NAME_LENGTH = 255
MAX_EXTERNAL_ID_LENGTH = 255
MAX_METADATA_KEYS = 50
MAX_METADATA_KEY_LENGTH = 64
MAX_METADATA_BYTES = 16 * 1024
MAX_METADATA_DEPTH = 32
"""Arrays/objects inside one another in a metadata value. Key-value pairs need little nesting;
orjson reads 1,024 levels but writes only 255, so without a bound a deep value parsed fine
and then failed to serialise (a 500)."""

RESERVED_FIELDS = frozenset({
    "file", "url", "name", "tags", "namespace", "public", "external_id", "date", "ttl", "metadata",
})
"""Request fields with a meaning of their own; everything else is metadata."""

RESPONSE_FIELDS = frozenset({
    "id", "src", "width", "height", "filesize", "extension", "editable", "created_at",
    "expires_at", "upgrade", "error", "message", "errors", "action", "media", "deleted",
})
"""Keys of the media object: metadata appears at its top level, so it may not shadow them."""

_NAMESPACE = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_UNIX = re.compile(r"^-?\d+(\.\d+)?$")


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class _Bad(ValueError):
    """One field's problem; collected into the 422's ``errors`` object."""


def _plain(value: str, what: str) -> str:
    """Refuse control characters (NUL and friends): databases and HTML pages choke on them."""
    if _CONTROL.search(value):
        raise _Bad(f"The {what} may not contain control characters.")
    return value


def display_name(raw: str | None) -> str | None:
    """A default name from a filename or URL: control characters dropped, at most 255 chars."""
    if raw is None:
        return None
    cleaned = _CONTROL.sub("", raw).strip()[:MAX_NAME_LENGTH].strip()
    return cleaned or None


def parse_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Bad("The name must be a non-empty string.")
    value = _plain(value.strip(), "name")
    if len(value) > MAX_NAME_LENGTH:
        raise _Bad(f"The name may not be longer than {MAX_NAME_LENGTH} characters.")
    return value


def parse_tags(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        items = value
    else:
        raise _Bad("Tags must be a comma-separated string or a list of strings.")
    tags: list[str] = []
    for item in (_plain(i.strip(), "tags") for i in items):
        if item and item not in tags:
            tags.append(item)
    if len(tags) > MAX_TAGS:
        raise _Bad(f"At most {MAX_TAGS} tags are allowed.")
    if any(len(tag) > MAX_TAG_LENGTH for tag in tags):
        raise _Bad(f"Each tag may be at most {MAX_TAG_LENGTH} characters long.")
    return tags


def parse_namespace(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not 2 <= len(value) <= 64 or not _NAMESPACE.match(value):
        raise _Bad("The namespace must be 2-64 characters: lowercase letters, digits and hyphens.")
    return value


MAX_SEARCH_LENGTH = 100


def parse_search(value: str | None) -> str | None:
    """The ``search`` of a list (an imgpro extension: part of the name, any case); blank is
    no search. Bounded so a pasted essay cannot become a scan-everything pattern."""
    if value is None or not value.strip():
        return None
    value = _plain(value.strip(), "search")
    if len(value) > MAX_SEARCH_LENGTH:
        raise _Bad(f"The search may not be longer than {MAX_SEARCH_LENGTH} characters.")
    return value


def parse_public(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _Bad("The public field must be true or false.")


def parse_external_id(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise _Bad("The external_id must be a non-empty string.")
    if len(value) > MAX_EXTERNAL_ID_LENGTH:
        raise _Bad(f"The external_id may not be longer than {MAX_EXTERNAL_ID_LENGTH} characters.")
    return _plain(value, "external_id")


def parse_date(value: Any) -> int | None:
    """ISO 8601 (date or date-time; naive means UTC) or a Unix timestamp -> Unix seconds."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise _Bad("The date must be ISO 8601 or a Unix timestamp.")
    if isinstance(value, int):
        return _in_range(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Bad("The date must be ISO 8601 or a Unix timestamp.")
        return _in_range(int(value))
    if isinstance(value, str):
        text = value.strip()
        if _UNIX.match(text):
            seconds = float(text)
            if not math.isfinite(seconds):  # "1" * 400 parses as inf
                raise _Bad("The date is out of range.")
            return _in_range(int(seconds))
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise _Bad("The date must be ISO 8601 or a Unix timestamp.") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return _in_range(int(moment.timestamp()))
    raise _Bad("The date must be ISO 8601 or a Unix timestamp.")


def _in_range(seconds: int) -> int:
    if not -62_135_596_800 <= seconds <= 253_402_300_799:  # years 1..9999
        raise _Bad("The date is out of range.")
    return seconds


def parse_ttl(value: Any) -> int:
    if isinstance(value, str) and value.strip().isdecimal() and len(value.strip()) <= 20:
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad("The ttl must be an integer number of seconds.")
    if value < MIN_TTL:
        raise _Bad(f"The ttl must be at least {MIN_TTL} seconds.")
    if value > 100 * 365 * 86_400:
        raise _Bad("The ttl is too large.")
    return value


def parse_metadata(value: Any) -> dict[str, Any]:
    """A JSON object (or its text, from a form field); null values mean "remove" in PATCH."""
    if value is None:
        return {}
    if isinstance(value, str | bytes):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise _Bad("The metadata must be a JSON object.") from None
    if not isinstance(value, dict):
        raise _Bad("The metadata must be a JSON object.")
    for key in value:
        check_metadata_key(key)
    return dict(value)


def check_metadata_key(key: str) -> None:
    if not key or len(key) > MAX_METADATA_KEY_LENGTH:
        raise _Bad(f"Metadata keys must be 1-{MAX_METADATA_KEY_LENGTH} characters.")
    if key in RESERVED_FIELDS or key in RESPONSE_FIELDS:
        raise _Bad(f"'{key}' is a reserved field and cannot be used as a metadata key.")
    _plain(key, "metadata key")


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "name": parse_name,
    "tags": parse_tags,
    "namespace": parse_namespace,
    "public": parse_public,
    "external_id": parse_external_id,
    "date": parse_date,
    "ttl": parse_ttl,
}


def parse_media_fields(raw: Mapping[str, Any], *, allow_ttl: bool,
                       ignore: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Validated fields the client sent; unknown keys are gathered into ``metadata``.

    ``metadata`` in the result merges the ``metadata`` object with top-level custom fields
    (the top-level ones win). Raises InvalidRequest listing every bad field at once.
    """
    errors: dict[str, list[str]] = {}
    out: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    for key, value in raw.items():
        if key in ignore:
            continue
        try:
            if key == "ttl" and not allow_ttl:
                raise _Bad("The ttl field requires an API key.")
            if key in _PARSERS:
                out[key] = _PARSERS[key](value)
            elif key == "metadata":
                custom = {**parse_metadata(value), **custom}
            elif key in RESERVED_FIELDS:
                continue  # "file" / "url": handled by the endpoint itself
            else:
                check_metadata_key(key)
                custom[key] = value
        except _Bad as bad:
            errors.setdefault(key, []).append(str(bad))
    if "metadata" in raw or custom:
        out["metadata"] = custom
        if "metadata" not in errors:
            try:
                check_metadata_size({k: v for k, v in custom.items() if v is not None})
            except InvalidRequest as too_much:
                errors.update(too_much.errors)
    if errors:
        raise InvalidRequest(errors)
    return out


def merge_metadata(current: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """Apply a PATCH: keys set to null are removed, the others replaced or added."""
    merged = {k: v for k, v in current.items() if k not in changes}
    merged.update({k: v for k, v in changes.items() if v is not None})
    check_metadata_size(merged)
    return merged


def check_metadata_size(metadata: Mapping[str, Any]) -> None:
    """Few enough keys, shallow enough values, few enough bytes once serialised."""
    if len(metadata) > MAX_METADATA_KEYS:
        raise InvalidRequest.field("metadata", f"At most {MAX_METADATA_KEYS} metadata keys.")
    if nesting_depth(metadata.values()) > MAX_METADATA_DEPTH:
        raise InvalidRequest.field(
            "metadata", f"Metadata values may nest at most {MAX_METADATA_DEPTH} levels deep.")
    try:
        size = len(orjson.dumps(dict(metadata)))
    except orjson.JSONEncodeError:  # nothing the checks above let through; never a 500
        raise InvalidRequest.field("metadata", "The metadata cannot be stored as JSON.") from None
    if size > MAX_METADATA_BYTES:
        raise InvalidRequest.field("metadata",
                                   f"Metadata may be at most {MAX_METADATA_BYTES} bytes.")


def nesting_depth(values: Iterable[Any]) -> int:
    """How deep lists and dicts nest in ``values`` (a scalar is 0, ``[1]`` is 1), counted
    without recursion (a 1,000-level value would exhaust Python's stack) and given up just
    past ``MAX_METADATA_DEPTH``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0) for value in values]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_METADATA_DEPTH:
                return deepest
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth) for child in children)
    return deepest
