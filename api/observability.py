"""Request metrics, access logs and ``GET /metrics``: one ASGI wrapper around the whole app.

It wraps every role, the CDN hot path included, so it is kept to a few dict reads and one log
call per request. The route label is the endpoint's name (``upload``, ``cdn``, ...), never the
raw path, so Prometheus series stay bounded. Access log lines go through a queue to a writer
thread: a slow stderr pipe can never block the event loop.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import os
import queue
import re
import sys
import time
import uuid
from typing import Any

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
from starlette.requests import Request
from starlette.responses import Response

from transformer.server import CDN_PATH, Receive, Scope, Send

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
access_log = logging.getLogger("imgpro.access")


class Observed:
    """Wraps an ASGI app: request id, per-request metrics and one access log line."""

    def __init__(self, app: Any, *, log_format: str) -> None:
        self.app = app
        self.json_logs = log_format == "json"

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
        REQUESTS.labels(route, scope["method"], str(status)).inc()
        LATENCY.labels(route).observe(elapsed)
        BYTES_SERVED.labels(route).inc(seen["bytes"])
        source = _INGEST_ROUTES.get(scope["path"])
        if source is not None and scope["method"] == "POST":
            if status == 201:
                UPLOADS.labels(source).inc()
            elif status >= 400:
                reason = scope.get("state", {}).get("error_code", f"http_{status}")
                UPLOAD_REJECTIONS.labels(reason).inc()
        if not access_log.isEnabledFor(logging.INFO):
            return
        record = {
            "request_id": request_id, "method": scope["method"], "path": scope["path"],
            "route": route, "status": status, "duration_ms": round(elapsed * 1000, 2),
            "bytes": seen["bytes"], "cache": seen["cache"],
            "client": (scope.get("client") or ("", 0))[0],
        }
        if self.json_logs:
            access_log.info(orjson.dumps(record).decode())
        else:
            access_log.info('%s "%s %s" %s %sB %sms cache=%s id=%s', record["client"],
                            record["method"], record["path"], status, record["bytes"],
                            record["duration_ms"], record["cache"] or "-", request_id)


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _REQUEST_ID.match(candidate):
                return candidate
            break
    return uuid.uuid4().hex[:16]


def _route_name(scope: Scope) -> str:
    endpoint = scope.get("endpoint")
    if endpoint is not None:
        return str(getattr(endpoint, "__name__", type(endpoint).__name__))
    if CDN_PATH.match(scope["path"]):
        return "cdn"
    return "unmatched"


async def metrics_endpoint(request: Request) -> Response:
    """Prometheus text format; sums every worker's values when several run."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def configure_access_log(enabled: bool = True) -> None:
    """Access lines to stdout through a queue and a writer thread; idempotent."""
    if access_log.handlers:
        return
    access_log.propagate = False
    access_log.setLevel(logging.INFO if enabled else logging.WARNING)
    lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    stream = logging.StreamHandler(sys.stdout)
    stream.setFormatter(logging.Formatter("%(message)s"))
    listener = logging.handlers.QueueListener(lines, stream)
    listener.start()
    atexit.register(listener.stop)
    access_log.addHandler(logging.handlers.QueueHandler(lines))


def mark_worker_gone() -> None:
    """Drop this process's live gauges from the multiprocess metrics on a clean stop."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
