"""Request metrics and access logs: one ASGI wrapper around the whole app, and the text of
``GET /metrics`` (served by ``api.serving.metrics_access``).

It wraps every role, the CDN hot path included, so it is kept to a few dict reads and one log
call per request. The route label is the endpoint's name (``upload``, ``cdn``, ...), never the
raw path, so Prometheus series stay bounded. Access log lines are appended to a deque that a
writer thread drains in batches: a slow stdout pipe never blocks the event loop, and a line costs
the loop a string format and an append, not a trip through ``logging`` (which halved cache-hit
throughput when tried).
"""

from __future__ import annotations

import atexit
import collections
import os
import re
import sys
import threading
import time
from typing import IO, Any

import orjson
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from transformer.origin.metrics import TALLY
from transformer.origin.request import CDN_PATH
from transformer.origin.responses import Answer, Receive, Scope, Send

REQUESTS = Counter("imgpro_http_requests_total", "HTTP requests by route, method and status.",
                   ["route", "method", "status"])
LATENCY = Histogram("imgpro_http_request_duration_seconds", "Time to the last body byte.",
                    ["route"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10))
BYTES_SERVED = Counter("imgpro_http_response_bytes_total", "Response body bytes by route.",
                       ["route"])
UPLOADS = Counter("imgpro_uploads_total", "Images stored, by how they came (upload, import).",
                  ["source"])
UPLOAD_REJECTIONS = Counter("imgpro_upload_rejections_total",
                            "Upload/import requests refused, by error code.", ["reason"])

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_INGEST_ROUTES = {"/v1/upload": "upload", "/v1/import": "import"}


class AccessLog:
    """Lines queued by the event loop, written by a daemon thread at most ~5 times a second."""

    def __init__(self, stream: IO[bytes], *, interval: float = 0.2, batch: int = 512) -> None:
        self._stream = stream
        self._lines: collections.deque[bytes] = collections.deque()
        self._interval = interval
        self._batch = batch
        self._wake = threading.Event()
        self._lock = threading.Lock()
        threading.Thread(target=self._run, name="access-log", daemon=True).start()
        atexit.register(self.flush)

    def write(self, line: bytes) -> None:
        self._lines.append(line)  # deque appends are thread-safe
        if len(self._lines) >= self._batch:
            self._wake.set()

    def flush(self) -> None:
        with self._lock:
            chunk = []
            while self._lines:
                chunk.append(self._lines.popleft())
            if chunk:
                self._stream.write(b"".join(chunk))
                self._stream.flush()

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            try:
                self.flush()
            except (OSError, ValueError):  # stdout closed at exit: nothing left to tell
                return


_access_log: AccessLog | None = None


class Observed:
    """Wraps an ASGI app: request id, per-request metrics and one access log line."""

    def __init__(self, app: Any, *, log_format: str, access_log: AccessLog | None) -> None:
        self.app = app
        self.json_logs = log_format == "json"
        self.access_log = access_log
        # Labelled children looked up once per (route, method, status), not three times a request.
        self._series: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}
        self._answer_from_memory = getattr(app, "answer_from_memory", None)

    def answer_from_memory(self, scope: Scope) -> Answer | None:
        """The wrapped app's synchronous answer to a cache hit, observed like any request:
        the same request id header, metrics and access log line as through ``__call__``."""
        if self._answer_from_memory is None:
            return None
        started = time.perf_counter()
        answer = self._answer_from_memory(scope)
        if answer is None:
            return None
        status, headers, body = answer
        request_id = _request_id(scope)
        headers.append((b"x-request-id", request_id.encode()))
        seen = {"status": status, "bytes": len(body), "cache": "memory"}
        self._record(scope, request_id, seen, time.perf_counter() - started)
        return answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        seen: dict[str, Any] = {"status": 500, "bytes": 0, "cache": None}

        async def observing_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                headers = list(message.get("headers", ()))
                for name, value in headers:
                    if name == b"x-cache":
                        seen["cache"] = value.decode()
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body":
                seen["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, observing_send)
        finally:
            self._record(scope, request_id, seen, time.perf_counter() - started)

    def _record(self, scope: Scope, request_id: str, seen: dict[str, Any],
                elapsed: float) -> None:
        route = _route_name(scope)
        status = seen["status"]
        series_key = (route, scope["method"], status)
        series = self._series.get(series_key)
        if series is None:
            series = (REQUESTS.labels(route, scope["method"], str(status)),
                      LATENCY.labels(route), BYTES_SERVED.labels(route))
            self._series[series_key] = series
        requests, latency, bytes_served = series
        TALLY.inc(requests)
        TALLY.observe(latency, elapsed)
        TALLY.inc(bytes_served, seen["bytes"])
        source = _INGEST_ROUTES.get(scope["path"])
        if source is not None and scope["method"] == "POST":
            if status == 201:
                UPLOADS.labels(source).inc()
            elif status >= 400:
                reason = scope.get("state", {}).get("error_code", f"http_{status}")
                UPLOAD_REJECTIONS.labels(reason).inc()
        if self.access_log is None:
            return
        client = (scope.get("client") or ("-", 0))[0]
        duration_ms = round(elapsed * 1000, 2)
        if self.json_logs:
            line = orjson.dumps({
                "request_id": request_id, "method": scope["method"], "path": scope["path"],
                "route": route, "status": status, "duration_ms": duration_ms,
                "bytes": seen["bytes"], "cache": seen["cache"], "client": client,
            }) + b"\n"
        else:
            line = (f'{client} "{scope["method"]} {loggable(scope["path"])}" {status} '
                    f'{seen["bytes"]}B {duration_ms}ms cache={seen["cache"] or "-"} '
                    f'id={request_id}\n').encode()
        self.access_log.write(line)


def loggable(path: str) -> str:
    """The path as one safe field of a plain log line.

    uvicorn hands over the path percent-decoded, so ``/x%0A1.2.3.4 "GET /admin" 200`` would
    write a second, forged line; ``"`` would end the quoted field early. Control characters,
    the other characters ``str.splitlines`` breaks on (NEL, U+2028...), ``"`` and ``\\`` are
    written as Python escapes (``\\n``, ``\\x85``, ``\\"``), everything else as it came. An
    ordinary path costs two substring checks and ``isprintable``.
    """
    if path.isprintable() and '"' not in path and "\\" not in path:
        return path
    return "".join(_ESCAPES.get(c) or (c if c.isprintable() else _escaped(c)) for c in path)


_ESCAPES = {'"': '\\"', "\\": "\\\\"}


def _escaped(char: str) -> str:
    return char.encode("unicode_escape").decode("ascii")


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _REQUEST_ID.match(candidate):
                return candidate
            break
    return os.urandom(8).hex()


def _route_name(scope: Scope) -> str:
    endpoint = scope.get("endpoint")
    if endpoint is not None:
        return str(getattr(endpoint, "__name__", type(endpoint).__name__))
    if CDN_PATH.match(scope["path"]):
        return "cdn"
    return "unmatched"


def metrics_body() -> tuple[bytes, str]:
    """The Prometheus text and its media type; sums every worker's values when several run
    (another worker's last second of requests may still be in its ``TALLY``). Who may see it
    is decided by ``api.serving.metrics_access``."""
    TALLY.flush()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def access_log_to_stdout() -> AccessLog:
    """The process's one access log writer (several apps in one process share it)."""
    global _access_log
    if _access_log is None:
        _access_log = AccessLog(sys.stdout.buffer)
    return _access_log


def mark_worker_gone() -> None:
    """Hand over the last tallied counts, then drop this process's live gauges from the
    multiprocess metrics on a clean stop."""
    TALLY.flush()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(os.getpid())
