"""Who may read ``/metrics``, and on which listener: never anyone on a public port by default.

Metrics tell traffic, error rates and upload volumes (an operator's business), and a scrape
costs CPU (with several workers it reads and sums every worker's files), so an open
``/metrics`` on the port the internet reaches is both a leak and a cheap way to load a node.
As with imgproxy, whose Prometheus endpoint exists only on its own bind address, nothing is
served unless the operator says where:

- ``IMGPRO_METRICS_ADDRESS=host:port``: a second listener (``imgpro serve`` binds it beside
  the main one; every worker serves both) that answers ``/metrics`` and nothing else; the
  main port then answers ``/metrics`` 404. Put it on a private interface or port.
- ``IMGPRO_METRICS_TOKEN``: ``/metrics`` needs ``Authorization: Bearer <token>`` (401
  otherwise), on the main port when there is no metrics address, and on the metrics address
  too when there is one.
- neither: ``/metrics`` is 404 everywhere, with a message naming the two settings.

The listener is told apart by the local port of the connection (``scope["server"]``), which
is why the metrics address must use a port of its own.
"""

from __future__ import annotations

import hmac
from typing import Any

from api.serving.observability import metrics_body
from transformer.origin.error_body import error_json
from transformer.origin.responses import Answer, Receive, Scope, Send, send_answer
from transformer.origin.responses import header as header_of

_JSON = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]


def _error(status: int, code: str, message: str, *extra: tuple[bytes, bytes]) -> Answer:
    return status, [*_JSON, *extra], error_json(code, message)


class MetricsAccess:
    """ASGI wrapper that answers ``/metrics`` (and everything on the metrics listener)."""

    def __init__(self, app: Any, *, token: str | None, metrics_port: int | None) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.metrics_port = metrics_port
        self._inner_answer = getattr(app, "answer_from_memory", None)

    def answer_from_memory(self, scope: Scope) -> Answer | None:
        """The HTTP protocol's memory-hit path: never for a request on the metrics listener."""
        if self._on_metrics_listener(scope):
            return None
        return self._inner_answer(scope) if self._inner_answer is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            on_listener = self._on_metrics_listener(scope)
            if on_listener or scope["path"] == "/metrics":
                scope["endpoint"] = metrics  # the route label of the request metrics
                status, headers, body = self._answer(scope, on_listener)
                headers.append((b"content-length", str(len(body)).encode()))
                await send_answer(send, (status, headers,
                                         b"" if scope["method"] == "HEAD" else body))
                return
        await self.app(scope, receive, send)

    def _on_metrics_listener(self, scope: Scope) -> bool:
        server = scope.get("server")
        return self.metrics_port is not None and server is not None and \
            server[1] == self.metrics_port

    def _answer(self, scope: Scope, on_listener: bool) -> Answer:
        if on_listener and scope["path"] != "/metrics":
            return _error(404, "not_found", "Only /metrics is served on this address.")
        if not on_listener and self.metrics_port is not None:
            return _error(404, "not_found", "Metrics are served on the metrics address only.")
        if not on_listener and self.token is None:
            return _error(404, "not_found", "Metrics are off on this port: set "
                          "IMGPRO_METRICS_ADDRESS or IMGPRO_METRICS_TOKEN to serve them.")
        if scope["method"] not in ("GET", "HEAD"):
            return _error(405, "method_not_allowed", "Use GET.", (b"allow", b"GET, HEAD"))
        if self.token is not None and not self._authorised(scope):
            return _error(401, "unauthorized", "Metrics need 'Authorization: Bearer <token>'.",
                          (b"www-authenticate", b'Bearer realm="metrics"'))
        return metrics(scope)

    def _authorised(self, scope: Scope) -> bool:
        assert self.token is not None
        scheme, _, given = (header_of(scope, b"authorization") or b"").partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self.token)


def metrics(scope: Scope) -> Answer:
    body, content_type = metrics_body()
    return 200, [(b"content-type", content_type.encode()), (b"cache-control", b"no-store")], body
