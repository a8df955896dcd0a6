"""Every error the CDN origin answers with, each with its status and public message.

    CdnError                   code                 status  when
     ├── ImageNotFound         not_found            404     no original here (or deleted)
     ├── UnsupportedExtension  unsupported_format   400     an extension we do not serve
     ├── NotConvertible        unsupported_format   400     an original-only type, other ext
     ├── InvalidSize           validation_error     422     size not s/m/l, or given twice
     ├── MethodNotAllowed      method_not_allowed   405     anything but GET/HEAD
     ├── StorageUnavailable    storage_unavailable  503     originals store unreachable
     ├── TransformQueueFull    overloaded           503     too many transforms waiting
     └── TransformRefused      the library's own code/status: bad image, bomb, timeout (503)

A 503 carries ``Retry-After`` and ``action: wait``; other errors may be cached briefly by a CDN.
"""

from __future__ import annotations

from transformer import TransformError

STORAGE_RETRY_SECONDS = 5
"""How long a client should wait after a storage outage or a transform timeout."""


class CdnError(Exception):
    """An answer in the reference's error shape (``error_body``)."""

    status: int = 400
    code: str = "bad_request"
    default_message: str = "Bad request."

    def __init__(self, message: str | None = None, *, retry_after: int | None = None,
                 errors: dict[str, list[str]] | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)
        self.retry_after, self.errors = retry_after, errors


class ImageNotFound(CdnError):
    status, code, default_message = 404, "not_found", "No image at this address."


class UnsupportedExtension(CdnError):
    status, code = 400, "unsupported_format"

    def __init__(self, extension: str) -> None:
        super().__init__(f"Unsupported extension .{extension}: use .jpeg, .jpg, .png, .webp "
                         "or .avif.")


class NotConvertible(CdnError):
    status, code = 400, "unsupported_format"

    def __init__(self, original_kind: str | None) -> None:
        super().__init__(f"This image is {original_kind}; ask for .{original_kind} or convert "
                         "with .jpeg, .png, .webp or .avif.")


class InvalidSize(CdnError):
    status, code = 422, "validation_error"

    def __init__(self, message: str, field_error: str) -> None:
        super().__init__(message, errors={"size": [field_error]})


class MethodNotAllowed(CdnError):
    status, code, default_message = 405, "method_not_allowed", "Use GET or HEAD."


class StorageUnavailable(CdnError):
    status, code = 503, "storage_unavailable"
    default_message = "Storage is unavailable; retry shortly."

    def __init__(self) -> None:
        super().__init__(retry_after=STORAGE_RETRY_SECONDS)


class TransformQueueFull(CdnError):
    status, code = 503, "overloaded"
    default_message = "Too many transforms in progress; retry shortly."

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after=retry_after)


class TransformRefused(CdnError):
    """A ``TransformError`` of the library, answered with its own code and status."""

    def __init__(self, error: TransformError) -> None:
        super().__init__(error.message,
                         retry_after=STORAGE_RETRY_SECONDS if error.status == 503 else None)
        self.status, self.code = error.status, error.code
