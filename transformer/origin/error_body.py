"""The reference's JSON error shape, built in one place for the CDN origin and the API.

    {"error": code, "message": text, "action"?: {...}, "errors"?: {field: [text, ...]}, ...}

Everything that answers an error (the origin's ASGI app, the /v1 API's handlers, the HTTP
protocol's own 400/431) calls these two functions, so the shape cannot drift between them.
No web framework here: the origin and the protocol write raw bytes.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson

ActionType = Literal["upgrade", "verify", "wait", "redirect"]


def action(type_: ActionType, *, url: str | None = None, label: str | None = None,
           seconds: int | None = None) -> dict[str, Any]:
    """An ``action`` object as the reference's error format describes it (absent keys omitted)."""
    body: dict[str, Any] = {"type": type_}
    if url is not None:
        body["url"] = url
    if label is not None:
        body["label"] = label
    if seconds is not None:
        body["seconds"] = seconds
    return body


def error_body(code: str, message: str, *, action: dict[str, Any] | None = None,
               errors: dict[str, list[str]] | None = None,
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The error object; ``extra`` carries the few documented additions (e.g. ``media``)."""
    out: dict[str, Any] = {"error": code, "message": message}
    if action is not None:
        out["action"] = action
    if errors:
        out["errors"] = errors
    if extra:
        out.update(extra)
    return out


def error_json(code: str, message: str, **fields: Any) -> bytes:
    """``error_body`` serialised: the bytes every JSON error response carries."""
    return orjson.dumps(error_body(code, message, **fields))
