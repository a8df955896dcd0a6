"""``GET /readyz``: can this node do its work now? Its database and its originals store.

``/healthz`` is liveness: the process is up and answering (a supervisor restarts it when
not). Readiness is separate, because restarting a node whose database is away helps nobody:
a load balancer should stop sending it requests until the database or the store is back, and
that is what 503 here tells it. Each part is checked with a cheap operation under one short
deadline, concurrently: ``SELECT 1`` on the database (API roles), a HEAD of a key that never
exists in the store (S3 or the local directory).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

import orjson
from starlette.responses import Response

from transformer.origin.error_body import action, error_body
from transformer.originals import OriginalsStore

CHECK_TIMEOUT = 3.0
"""Seconds each part may take to answer before it counts as unreachable."""
RETRY_AFTER = 3
PROBE_TEAM, PROBE_UID = "imgpro", "readyz"
"""The store key looked up: absent is an answer (reachable), an error is not."""

Check = Callable[[], Awaitable[object]]


async def _outcome(check: Check) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await check()
    except TimeoutError:
        return f"unreachable: no answer within {CHECK_TIMEOUT:g} s"
    except Exception as exc:  # noqa: BLE001 - any failure is "not ready", said in the body
        reason = str(exc).strip().splitlines()
        return f"unreachable: {type(exc).__name__}" + (f": {reason[0]}" if reason else "")
    return "ok"


async def readiness(store: OriginalsStore, database: Check | None,
                    starting: bool = False) -> Response:
    """200 with each part "ok", or 503 naming the parts that failed."""
    checks: dict[str, Check] = {"store": lambda: store.head(PROBE_TEAM, PROBE_UID)}
    if database is not None:
        checks = {"database": database, **checks}
    results = dict(zip(checks, await asyncio.gather(*(_outcome(c) for c in checks.values())),
                       strict=True))
    failed = [name for name, result in results.items() if result != "ok"]
    if not failed and not starting:
        body = {"status": "ready", "checks": results, "pid": os.getpid()}
        return Response(orjson.dumps(body), media_type="application/json")
    message = ("This node is still starting." if starting
               else f"Not ready: {' and '.join(failed)} unreachable.")
    body = error_body("service_unavailable", message,
                      action=action("wait", seconds=RETRY_AFTER),
                      extra={"status": "starting" if starting else "unavailable",
                             "checks": results})
    return Response(orjson.dumps(body), status_code=503, media_type="application/json",
                    headers={"Retry-After": str(RETRY_AFTER), "Cache-Control": "no-store"})
