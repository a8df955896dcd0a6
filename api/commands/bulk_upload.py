"""``imgpro upload PATH...``: send files and folders to ``POST /v1/upload``, safe to re-run.

What makes it safe to run again and again on the same folder:
- every file's ``external_id`` is its content hash (``sha256:<hex>``), so the server answers
  ``409 duplicate`` for a file it already has and we count it as "exists", not as a failure
  (anonymous uploads cannot carry an external_id, so without a key re-runs upload again);
- non-images are skipped with a reason after sniffing their first bytes, never by extension,
  and files over the server's size limit fail without being sent;
- ``429`` and ``5xx`` answers and dropped connections are retried, waiting as long as
  ``Retry-After`` says (or backing off exponentially), unless that is longer than
  ``--max-wait``; anything else is a failure with the API's own message.

It ends with a summary table (or, with ``--json``, one JSON line per file) and exits 1 if any
file failed, so scripts and CI can rely on the exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Literal

import httpx
import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from api.commands.http_client import USER_AGENT, add_server_options, api_key, error_text, server_url
from api.rules.plans import MB, max_file_bytes
from api.settings import Settings
from transformer import SNIFF_BYTES, sniff_format

Outcome = Literal["uploaded", "exists", "skipped", "failed"]
OUTCOMES: tuple[Outcome, ...] = ("uploaded", "exists", "skipped", "failed")

RETRYABLE = frozenset({429, 500, 502, 503, 504})
BACKOFF_START = 1.0
BACKOFF_MAX = 30.0


@dataclass
class FileResult:
    """What happened to one file; also the ``--json`` line."""

    path: str
    status: Outcome
    bytes: int = 0
    reason: str | None = None
    id: str | None = None
    url: str | None = None
    src: str | None = None
    external_id: str | None = None
    attempts: int = 0

    def json_line(self) -> str:
        return orjson.dumps({k: v for k, v in asdict(self).items() if v is not None}).decode()


@dataclass(frozen=True)
class UploadOptions:
    api: str
    key: str | None
    namespace: str | None = None
    tags: str | None = None
    concurrency: int = 4
    retries: int = 5
    max_wait: float = 120.0
    timeout: float = 300.0


@dataclass
class Run:
    """Shared state of one run: results, and the stop signal a bad key raises."""

    results: list[FileResult] = field(default_factory=list)
    stop_reason: str | None = None


# ---- Finding files ------------------------------------------------------------------------

def walk(paths: Sequence[Path], recursive: bool) -> Iterator[Path | FileResult]:
    """Files named or inside the folders named (their subfolders too with ``recursive``).

    Paths that do not exist come out as failed results; each file comes out once.
    """
    seen: set[Path] = set()

    def once(path: Path) -> Iterator[Path]:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            yield path

    for path in paths:
        if path.is_file():
            yield from once(path)
        elif path.is_dir():
            if recursive:
                for folder, dirs, files in os.walk(path):
                    dirs.sort()
                    for name in sorted(files):
                        if (Path(folder) / name).is_file():
                            yield from once(Path(folder) / name)
            else:
                for child in sorted(path.iterdir()):
                    if child.is_file():
                        yield from once(child)
        else:
            yield FileResult(str(path), "failed", reason="no such file or directory")


def content_hash(data: bytes) -> str:
    """The external_id of a file: the same bytes always get the same id, in any folder."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def size_refusal(size: int, head: bytes, *, authenticated: bool) -> str | None:
    """The server's ``file_too_large`` answer, known before sending: past the limit a server
    refuses and closes at once, and for a large body the client then often sees only a reset
    connection instead of the answer, so the limit is checked here with the server's own rule."""
    limit = max_file_bytes(authenticated=authenticated, svg=sniff_format(head) == "svg")
    if size <= limit:
        return None
    who = "with an API key" if authenticated else "for anonymous uploads"
    return f"file_too_large: {size:,} bytes is over the {limit // MB} MB limit {who}"


def non_image_reason(head: bytes) -> str | None:
    """Why a file is skipped, or None when its first bytes look like an image we accept."""
    if not head:
        return "empty file"
    if sniff_format(head[:SNIFF_BYTES]) is None:
        return "not an image (content not recognised)"
    return None


# ---- Retrying -----------------------------------------------------------------------------

def retry_delay(response: httpx.Response | None, attempt: int, now: float | None = None) -> float:
    """Seconds to wait before the next try: ``Retry-After`` (seconds or a date) or backoff."""
    header = response.headers.get("retry-after") if response is not None else None
    if header:
        header = header.strip()
        if header.isdigit():
            return float(header)
        try:
            when = parsedate_to_datetime(header).timestamp()
        except (TypeError, ValueError):
            pass
        else:
            return max(0.0, when - (now if now is not None else time.time()))
    return min(BACKOFF_MAX, BACKOFF_START * 2 ** (attempt - 1))


class CountingReader(io.BytesIO):
    """The file body as httpx reads it chunk by chunk, reporting each chunk for progress."""

    def __init__(self, data: bytes, report: Callable[[int], None]) -> None:
        super().__init__(data)
        self.report = report
        self.sent = 0

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        position = super().seek(offset, whence)
        if position == 0 and self.sent:
            self.report(-self.sent)  # a retry re-reads from the start: take back the count
            self.sent = 0
        return position

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.sent += len(chunk)
        self.report(len(chunk))
        return chunk


def _head_and_size(path: Path) -> tuple[bytes, int]:
    with path.open("rb") as fh:
        return fh.read(SNIFF_BYTES), os.fstat(fh.fileno()).st_size


# ---- Uploading one file -------------------------------------------------------------------

async def upload_file(client: httpx.AsyncClient, path: Path, options: UploadOptions, run: Run,
                      report: Callable[[int], None]) -> FileResult:
    """Upload one file with retries; ``report(n)`` moves the byte progress by ``n``."""
    try:
        head, size = await asyncio.to_thread(_head_and_size, path)
        reason = non_image_reason(head)
        if reason is not None:
            report(size)
            return FileResult(str(path), "skipped", size, reason=reason)
        refusal = size_refusal(size, head, authenticated=bool(options.key))
        if refusal is not None:
            report(size)
            return FileResult(str(path), "failed", size, reason=refusal)
        data = await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        return FileResult(str(path), "failed", reason=f"cannot read: {exc.strerror or exc}")

    result = FileResult(str(path), "failed", len(data))
    fields: dict[str, str] = {"name": path.name}
    if options.key:
        result.external_id = fields["external_id"] = content_hash(data)
    if options.namespace:
        fields["namespace"] = options.namespace
    if options.tags:
        fields["tags"] = options.tags
    body = CountingReader(data, report)
    try:
        await _send_with_retries(client, path, fields, body, options, run, result)
    finally:
        # Count each file's bytes exactly once, however far its last attempt got, so the bar
        # ends at 100% and the rate stays honest.
        report(len(data) - body.sent)
        body.sent = len(data)
    return result


async def _send_with_retries(client: httpx.AsyncClient, path: Path, fields: dict[str, str],
                             body: CountingReader, options: UploadOptions, run: Run,
                             result: FileResult) -> None:
    for attempt in range(1, options.retries + 2):
        if run.stop_reason is not None:
            result.reason = f"not sent: {run.stop_reason}"
            return
        result.attempts = attempt
        response: httpx.Response | None = None
        try:
            response = await client.post(
                "/v1/upload", data=fields,
                files={"file": (path.name, body, "application/octet-stream")},
            )
        except httpx.TransportError as exc:
            problem = f"{type(exc).__name__}: {exc}".rstrip(": ")
        else:
            if response.status_code in (200, 201):
                _take_media(result, response.json(), "uploaded")
                return
            if response.status_code == 409:
                existing = _json(response).get("media")
                _take_media(result, existing if isinstance(existing, dict) else {}, "exists")
                return
            problem = error_text(response)
            if response.status_code == 401:
                run.stop_reason = problem  # a bad key fails every file: stop sending
            if response.status_code not in RETRYABLE:
                result.reason = problem
                return
        if attempt > options.retries:
            result.reason = f"{problem} (gave up after {attempt} attempts)"
            return
        delay = retry_delay(response, attempt)
        if delay > options.max_wait:
            result.reason = f"{problem} (server asks to wait {delay:.0f} s, over --max-wait)"
            return
        await asyncio.sleep(delay)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _take_media(result: FileResult, media: dict[str, Any], status: Outcome) -> None:
    result.status = status
    result.reason = None
    for name in ("id", "url", "src"):
        value = media.get(name)
        if isinstance(value, str):
            setattr(result, name, value)


# ---- The whole run ------------------------------------------------------------------------

async def upload_all(paths: Sequence[Path], options: UploadOptions, *, recursive: bool,
                     on_result: Callable[[FileResult], None] | None = None,
                     progress: Progress | None = None) -> list[FileResult]:
    """Upload every file found under ``paths`` with ``options.concurrency`` requests in flight."""
    run = Run()
    files: list[Path] = []
    for item in walk(paths, recursive):
        if isinstance(item, FileResult):
            run.results.append(item)
            if on_result:
                on_result(item)
        else:
            files.append(item)
    total_bytes = sum(_size(p) for p in files)
    task = progress.add_task("", total=total_bytes or None) if progress else None
    done = 0

    def report(n: int) -> None:
        if progress is not None and task is not None:
            progress.advance(task, n)

    def describe() -> None:
        if progress is not None and task is not None:
            progress.update(task, description=f"{done}/{len(files)} files")

    describe()
    queue: asyncio.Queue[Path] = asyncio.Queue()
    for path in files:
        queue.put_nowait(path)
    headers = {"User-Agent": USER_AGENT}
    if options.key:
        headers["Authorization"] = f"Bearer {options.key}"
    limits = httpx.Limits(max_connections=options.concurrency,
                          max_keepalive_connections=options.concurrency)
    timeout = httpx.Timeout(options.timeout, connect=10.0)

    async with httpx.AsyncClient(base_url=options.api, headers=headers, limits=limits,
                                 timeout=timeout) as client:

        async def worker() -> None:
            nonlocal done
            while True:
                try:
                    path = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                result = await upload_file(client, path, options, run, report)
                run.results.append(result)
                done += 1
                describe()
                if on_result:
                    on_result(result)

        workers = max(1, min(options.concurrency, len(files)))
        await asyncio.gather(*(worker() for _ in range(workers)))
    return run.results


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


# ---- Output -------------------------------------------------------------------------------

def summary_table(results: Sequence[FileResult]) -> Table:
    table = Table(title="imgpro upload")
    table.add_column("result")
    table.add_column("files", justify="right")
    table.add_column("bytes", justify="right")
    for outcome in OUTCOMES:
        chosen = [r for r in results if r.status == outcome]
        table.add_row(outcome, str(len(chosen)), f"{sum(r.bytes for r in chosen):,}")
    table.add_row("total", str(len(results)), f"{sum(r.bytes for r in results):,}", style="bold")
    return table


def problems_table(results: Sequence[FileResult], limit: int = 50) -> Table | None:
    problems = [r for r in results if r.status in ("failed", "skipped")]
    if not problems:
        return None
    table = Table(title="skipped and failed files")
    table.add_column("file", overflow="fold")
    table.add_column("result")
    table.add_column("reason", overflow="fold")
    for result in problems[:limit]:
        table.add_row(result.path, result.status, result.reason or "")
    if len(problems) > limit:
        table.add_row(f"... and {len(problems) - limit} more", "", "")
    return table


def exit_code(results: Sequence[FileResult]) -> int:
    return 1 if any(r.status == "failed" for r in results) else 0


# ---- Command line -------------------------------------------------------------------------

def add_parser(sub: Any) -> None:
    """Register ``imgpro upload`` on the ``imgpro`` command's subparsers."""
    parser = sub.add_parser(
        "upload", help="upload image files and folders to an imgpro server",
        description="Upload files and folders concurrently. Re-runs are idempotent with a key: "
                    "each file's external_id is its content hash, and files already there "
                    "count as 'exists'. Exits 1 if any file failed.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", type=Path)
    parser.add_argument("-r", "--recursive", action="store_true",
                        help="also upload the files in subfolders of the folders given")
    parser.add_argument("--namespace", default=None, help="namespace of every uploaded image")
    parser.add_argument("--tags", default=None, help="comma-separated tags, e.g. a,b")
    parser.add_argument("--concurrency", type=_positive_int, default=4,
                        help="uploads in flight at once (default 4)")
    parser.add_argument("--retries", type=_non_negative_int, default=5,
                        help="retries of a file after 429/5xx/connection errors (default 5)")
    parser.add_argument("--max-wait", type=float, default=120.0,
                        help="longest Retry-After to honour, in seconds (default 120)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON line per file instead of progress and tables")
    add_server_options(parser, with_key=True)
    parser.set_defaults(func=main)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def main(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("imgpro upload: interrupted; files already sent stay (run again to resume)",
              file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    settings = Settings()
    options = UploadOptions(
        api=server_url(args, settings), key=api_key(args, settings), namespace=args.namespace,
        tags=args.tags, concurrency=args.concurrency, retries=args.retries,
        max_wait=args.max_wait,
    )
    if args.json:
        def emit(result: FileResult) -> None:
            sys.stdout.write(result.json_line() + "\n")
            sys.stdout.flush()

        results = asyncio.run(upload_all(args.paths, options, recursive=args.recursive,
                                         on_result=emit))
        return exit_code(results)

    console = Console()
    if not options.key:
        console.print("[yellow]No API key (--key or IMGPRO_API_KEY): uploading anonymously; "
                      "images expire after 30 days and re-runs upload again.[/]")
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
        TransferSpeedColumn(), TimeRemainingColumn(), console=console, transient=False,
    )
    with progress:
        results = asyncio.run(upload_all(args.paths, options, recursive=args.recursive,
                                         progress=progress))
    console.print(summary_table(results))
    problems = problems_table(results)
    if problems is not None:
        console.print(problems)
    return exit_code(results)
