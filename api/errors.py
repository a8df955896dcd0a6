"""Every error the /v1 API answers with, and the one place they become JSON.

    ApiError                          code                  status  action
     ├── InvalidRequest               validation_error      422     (+ ``errors`` per field)
     ├── Unauthorized                 unauthorized          401
     ├── Forbidden                    forbidden             403
     ├── RegistrationClosed           registration_closed   403     redirect
     ├── NotFound                     not_found             404
     ├── MethodNotAllowed             method_not_allowed    405
     ├── Duplicate                    duplicate             409     (+ ``media``: the existing one)
     ├── RequestTimeout               request_timeout       408     (a stalled body; closes)
     ├── QuotaExceeded                quota_exceeded        413     upgrade (signed one-click URL)
     ├── RateLimited                  rate_limited          429     wait (+ Retry-After header)
     ├── MissingFile                  missing_file          400
     ├── MissingUrl                   missing_url           400
     ├── FileTooLarge                 file_too_large        400
     ├── UnsupportedFormat            unsupported_format    400
     ├── FetchFailed                  fetch_failed          400
     ├── ServiceUnavailable           service_unavailable   503     wait (+ Retry-After header)
     └── InternalError                internal_error        500     only for real bugs (logged)

The reference's ``key_limit_reached`` (403, 3 keys while unverified) has no class: pending keys
take no slot and activating one verifies the account, so it cannot happen (api/routes/keys.py).

Handlers raise these; ``error_response`` is the only code that turns one into a response, and
the body comes from ``transformer.origin.error_body`` (shared with the CDN origin and the HTTP
protocol), so the shape ``{"error", "message", "action"?, "errors"?}`` cannot drift.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from transformer.origin.error_body import ActionType, action, error_body

__all__ = ["ActionType", "action"]  # re-exported: handlers build actions from here

class ApiError(Exception):
    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500

    def __init__(self, message: str, *, action: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.action = action
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, action=self.action, extra=self.extra)


class InvalidRequest(ApiError):
    """422 with field-level details: ``errors`` maps each field to a list of messages."""

    code = "validation_error"
    status = 422

    def __init__(self, errors: dict[str, list[str]], message: str | None = None) -> None:
        first = next(iter(errors.values()), ["invalid input"])[0]
        super().__init__(message or first, extra={"errors": errors})
        self.errors = errors

    @classmethod
    def field(cls, name: str, message: str) -> InvalidRequest:
        return cls({name: [message]})


class Unauthorized(ApiError):
    code = "unauthorized"
    status = 401


class Forbidden(ApiError):
    code = "forbidden"
    status = 403


class RegistrationClosed(ApiError):
    code = "registration_closed"
    status = 403


class NotFound(ApiError):
    code = "not_found"
    status = 404


class MethodNotAllowed(ApiError):
    code = "method_not_allowed"
    status = 405


class Duplicate(ApiError):
    code = "duplicate"
    status = 409


class RequestTimeout(ApiError):
    code = "request_timeout"
    status = 408

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Connection": "close"})


class QuotaExceeded(ApiError):
    code = "quota_exceeded"
    status = 413


class RateLimited(ApiError):
    code = "rate_limited"
    status = 429

    def __init__(self, message: str, *, retry_after: int,
                 headers: dict[str, str] | None = None) -> None:
        retry_after = max(1, int(retry_after))
        super().__init__(
            message,
            action=action("wait", seconds=retry_after, label="Try again later"),
            headers={**(headers or {}), "Retry-After": str(retry_after)},
        )
        self.retry_after = retry_after


class MissingFile(ApiError):
    code = "missing_file"
    status = 400


class MissingUrl(ApiError):
    code = "missing_url"
    status = 400


class FileTooLarge(ApiError):
    code = "file_too_large"
    status = 400


class UnsupportedFormat(ApiError):
    code = "unsupported_format"
    status = 400


class FetchFailed(ApiError):
    code = "fetch_failed"
    status = 400


class ServiceUnavailable(ApiError):
    code = "service_unavailable"
    status = 503

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        # Same shape as the CDN's 503 and the 429: clients retry on action.seconds.
        super().__init__(message, action=action("wait", seconds=retry_after),
                         headers={"Retry-After": str(retry_after)})


class InternalError(ApiError):
    code = "internal_error"
    status = 500


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Every JSON body of the API goes out through orjson with the same media type."""
    return Response(orjson.dumps(body), status_code=status, headers=headers,
                    media_type="application/json")


def error_response(error: ApiError, headers: dict[str, str] | None = None) -> Response:
    """The reference's error shape for ``error``; ``headers`` adds e.g. quota headers."""
    return json_response(error.body(), error.status, {**(headers or {}), **error.headers})


async def http_exception_response(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 (no route, wrong method) in the reference's shape."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        allow = (exc.headers or {}).get("Allow", "")
        return error_response(MethodNotAllowed(f"Method {request.method} not allowed here."),
                              {"Allow": allow} if allow else None)
    if exc.status_code == 404:
        return error_response(NotFound(f"No such endpoint: {request.url.path}"))
    return json_response(error_body("http_error", exc.detail), exc.status_code,
                         dict(exc.headers or {}))
