"""Read a multipart upload from the request stream, refusing oversize files while streaming.

The size limit is checked after every chunk the socket delivers: the moment the ``file`` part
passes its limit, reading stops and ``FileTooLarge`` is raised, so a client that sends 1 GB
costs us one limit's worth of bandwidth, not 1 GB. The limit depends on the file's type (SVG
10 MB), which is sniffed from the part's first bytes, never from its filename. A declared
Content-Length that is already too large is refused before reading anything.

The file part goes into a ``SpooledBody`` (memory while small, a temporary file once large);
python-multipart's callbacks are synchronous, so they gather the part's data of one socket
chunk and the loop hands it to the spool after each chunk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from api.errors import FileTooLarge, InvalidRequest, MissingFile
from api.intake.body_stream import body_chunks
from api.intake.spool import SpooledBody
from api.rules.plans import MB
from transformer import SNIFF_BYTES, sniff_format

FORM_OVERHEAD = 1 * MB
"""What a request may carry besides the file: fields, part headers, boundaries."""
MAX_FIELDS = 100


@dataclass
class UploadForm:
    fields: dict[str, str] = field(default_factory=dict)
    has_file: bool = False
    filename: str | None = None


def looks_like_svg(head: bytes) -> bool:
    return sniff_format(head) == "svg"


class _FormCollector:
    """python-multipart callbacks that gather fields and the file, counting bytes as they come."""

    def __init__(self, file_limit: Callable[[bool], int]) -> None:
        self.form = UploadForm()
        self.file_limit = file_limit
        self._headers: dict[bytes, bytes] = {}
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._name: str | None = None
        self._is_file = False
        self._is_other_file = False
        self._file_was_uploaded = False
        self._data = bytearray()
        self._fields_bytes = 0
        self._limit: int | None = None
        self.error: Exception | None = None
        self.file_data = bytearray()
        """File bytes of the current socket chunk, for the loop to hand to the spool."""
        self.file_restarted = False
        """A later part replaces the file: the spool must forget what it holds."""
        self._file_size = 0
        self._file_head = b""

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": lambda data, start, end: self._header_field.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._header_value.extend(data[start:end]),
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def on_part_begin(self) -> None:
        self._headers = {}
        self._data = bytearray()
        self._name = None
        self._is_file = False
        self._is_other_file = False

    def on_header_end(self) -> None:
        self._headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name")
        self._name = name.decode("utf-8", "replace") if name is not None else None
        uploaded = b"filename" in options
        # The first part named "file" is the file, except that an uploaded file (a part with a
        # filename) wins over a plain text field of that name sent before it.
        self._is_file = self._name == "file" and (
            not self.form.has_file or (uploaded and not self._file_was_uploaded))
        self._is_other_file = not self._is_file and uploaded
        if self._is_file:
            self._file_was_uploaded = uploaded
            filename = options.get(b"filename")
            self.form.filename = filename.decode("utf-8", "replace") if filename else None
            self._limit = None
            if self.form.has_file or self._file_size:
                self.file_restarted = True
            self.form.has_file = False
            self.file_data = bytearray()
            self._file_size = 0
            self._file_head = b""
        elif len(self.form.fields) >= MAX_FIELDS:
            self.error = InvalidRequest.field("form", f"At most {MAX_FIELDS} form fields.")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.error is not None:
            return
        if self._is_file:
            self.file_data += memoryview(data)[start:end]
            self._file_size += end - start
            if len(self._file_head) < SNIFF_BYTES:
                self._file_head += data[start:min(end, start + SNIFF_BYTES - len(self._file_head))]
            if self._limit is None and len(self._file_head) >= SNIFF_BYTES:
                self._limit = self.file_limit(looks_like_svg(self._file_head))
            limit = self._limit or self.file_limit(False)
            if self._file_size > limit:
                self.error = _too_large(limit)
        else:
            if not self._is_other_file:  # another uploaded file is counted, not kept
                self._data.extend(data[start:end])
            self._fields_bytes += end - start
            if self._fields_bytes > FORM_OVERHEAD:
                self.error = InvalidRequest.field("form", "The form fields are too large.")

    def on_part_end(self) -> None:
        if self.error is not None or self._name is None:
            return
        if self._is_file:
            limit = self.file_limit(looks_like_svg(self._file_head))
            if self._file_size > limit:
                self.error = _too_large(limit)
                return
            self.form.has_file = True
        elif not self._is_other_file:
            self.form.fields[self._name] = self._data.decode("utf-8", "replace")
        self._data = bytearray()


def _too_large(limit: int) -> FileTooLarge:
    return FileTooLarge(f"The file exceeds the size limit of {limit // MB} MB.")


def declared_length(request: Request) -> int | None:
    declared = request.headers.get("content-length")
    return int(declared) if declared is not None and declared.isdigit() else None


async def read_upload_form(request: Request, file_limit: Callable[[bool], int],
                           into: SpooledBody) -> UploadForm:
    """Stream the body through the parser, the ``file`` part into ``into``;
    ``file_limit(is_svg)`` gives the byte limit.

    Before reading, room for the body (its declared length, or the largest allowed) is
    reserved from ``into``'s budget (503 when none comes within the wait). Raises
    MissingFile (no multipart body / no ``file`` part), FileTooLarge (as soon as it is
    known), or InvalidRequest (malformed multipart, too many or too large fields).
    """
    content_type, options = parse_options_header(request.headers.get("content-type"))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise MissingFile("Send the image as multipart/form-data in a field named 'file'.")
    declared = declared_length(request)
    largest = file_limit(False) + FORM_OVERHEAD
    if declared is not None and declared > largest:
        raise _too_large(file_limit(False))
    into.max_bytes = largest
    await into.expect(declared)

    collector = _FormCollector(file_limit)
    parser = MultipartParser(boundary, collector.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in body_chunks(request):
            parser.write(chunk)
            if collector.error is not None:
                raise collector.error
            await _hand_over(collector, into)
        parser.finalize()
    except MultipartParseError:
        raise InvalidRequest.field("file", "The multipart body is malformed.") from None
    if collector.error is not None:
        raise collector.error
    await _hand_over(collector, into)
    await into.finish()
    if not collector.form.has_file:
        raise MissingFile("No file in the request: send it in a form field named 'file'.")
    if not into.size:
        raise MissingFile("The file is empty (0 bytes).")
    return collector.form


async def _hand_over(collector: _FormCollector, into: SpooledBody) -> None:
    """Move the file bytes the parser gathered from the last chunk into the spool."""
    if collector.file_restarted:
        collector.file_restarted = False
        await into.reset()
    if collector.file_data:
        data, collector.file_data = collector.file_data, bytearray()
        await into.write(data)
