"""How a tool reaches the /v1 API: one HTTP request, and its answer as the reference words it.

Both transports use this. Over stdio the client is an ``httpx.AsyncClient`` pointed at an
imgpro server; under ``/mcp`` it is pointed at the API app in-process (``httpx.ASGITransport``),
so the key, quotas, rate limits, validation and error shapes are the API's own in both cases,
never re-implemented here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from api.commands.http_client import USER_AGENT


@dataclass(frozen=True, slots=True)
class Answer:
    """An API answer: its status and its JSON object (the reference's error shape on failure)."""

    status: int
    body: dict[str, Any]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """An error in the reference's shape, for failures that never got an API answer."""
    return {"error": code, "message": message, **extra}


class ImgproApi:
    """The API as one caller (one key, or none) sees it."""

    def __init__(self, http: httpx.AsyncClient, key: str | None, where: str) -> None:
        self.http = http
        self.key = key
        self.where = where  # named in "cannot reach" errors: the URL, or "this server"

    async def call(self, method: str, path: str, **kwargs: Any) -> Answer:
        """``kwargs`` are httpx's (params, json, data, files). Never raises for an HTTP answer;
        a server that cannot be reached is an ``unreachable`` error answer."""
        headers = {"User-Agent": USER_AGENT}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        try:
            response = await self.http.request(method, path, headers=headers, **kwargs)
        except httpx.TransportError as exc:
            detail = f"{type(exc).__name__}: {exc}".rstrip(": ")
            return Answer(503, error_body("unreachable",
                                          f"Could not reach the imgpro API at {self.where} "
                                          f"({detail})."))
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = error_body("http_error",
                              f"HTTP {response.status_code} {response.reason_phrase}".strip())
        return Answer(response.status_code, body)
