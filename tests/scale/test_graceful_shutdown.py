"""SIGTERM: a node stops accepting at once, finishes what is in flight, and exits 0.

In flight here means two kinds of slow requests: large AVIF transforms with the caches off
(work the server does), and an upload whose body the client holds back until the test has
seen new connections refused (so "refused while draining" does not depend on how fast the
machine transforms). Everything in flight must complete (200, 201) after the signal, and
the process must end with status 0 within uvicorn's graceful-shutdown bound.
"""

from __future__ import annotations

import concurrent.futures
import io
import json
import signal
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image

from tests.conftest import CorpusImage, RunningServer
from tests.scale.conftest import place

SLOW = ["avif?size=l", "avif?size=m"]
METRICS_TOKEN = "metrics-token-of-the-tests"


def transforms_in_flight(server: RunningServer) -> float:
    """imgpro_transform_queue_depth from /metrics (summed over the workers)."""
    text = httpx.get(f"{server.url}/metrics", timeout=10,
                     headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text
    for line in text.splitlines():
        if line.startswith("imgpro_transform_queue_depth"):
            return float(line.split()[-1])
    return 0.0


def refused(url: str) -> bool:
    try:
        httpx.get(f"{url}/healthz", timeout=2)
    except httpx.ConnectError:
        return True
    except httpx.TransportError:  # accepted by the kernel, then reset: not refused yet
        return False
    return False


class HeldUpload:
    """A POST /v1/upload whose body is sent only on ``finish``.

    ``Expect: 100-continue`` makes the server say when the upload handler starts reading the
    body, so the request is known to be in flight (not merely connected) before SIGTERM.
    """

    def __init__(self, url: str) -> None:
        png = io.BytesIO()
        Image.new("RGB", (40, 30), "teal").save(png, format="PNG")
        boundary = "imgproheld"
        self.body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                     f"filename=\"held.png\"\r\nContent-Type: image/png\r\n\r\n").encode() \
            + png.getvalue() + f"\r\n--{boundary}--\r\n".encode()
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
        self.sock.sendall(
            f"POST /v1/upload HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {len(self.body)}\r\nExpect: 100-continue\r\n\r\n".encode())
        interim = self._read_until(b"\r\n\r\n")
        assert interim.startswith(b"HTTP/1.1 100"), interim

    def _read_until(self, marker: bytes) -> bytes:
        data = b""
        while marker not in data:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data

    def finish(self) -> int:
        """Send the body; the response's status code."""
        with self.sock:
            self.sock.sendall(self.body)
            head = self._read_until(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1])


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_drains_in_flight_requests_and_exits_0(
        server_factory, corpus: list[CorpusImage], workers: int) -> None:  # type: ignore[no-untyped-def]
    server = server_factory({"IMGPRO_MEMORY_CACHE_MB": "0", "IMGPRO_DISK_CACHE_MB": "0",
                             "IMGPRO_TRANSFORM_THREADS": "1", "IMGPRO_RATE_LIMITS": "off",
                             "IMGPRO_METRICS_TOKEN": METRICS_TOKEN},
                            args=["--workers", str(workers)])
    big = max(corpus, key=lambda i: i.width * i.height)
    place(server, "big", big.data)

    def fetch(ext: str) -> httpx.Response:
        with httpx.Client(timeout=60) as client:  # one connection per request
            return client.get(f"{server.url}/t/big.{ext}")

    with concurrent.futures.ThreadPoolExecutor(len(SLOW)) as pool:
        transforms = [pool.submit(fetch, ext) for ext in SLOW]
        upload = HeldUpload(server.url)
        deadline = time.monotonic() + 30
        while transforms_in_flight(server) < 1:
            assert time.monotonic() < deadline, "the transforms never started"
            time.sleep(0.05)

        server.process.send_signal(signal.SIGTERM)
        # The held upload keeps the node draining: it cannot have exited yet.
        while not refused(server.url):
            assert time.monotonic() < deadline + 10, "still accepting after SIGTERM"
            time.sleep(0.05)
        assert server.process.poll() is None

        assert upload.finish() == 201
        responses = [f.result() for f in transforms]
    for ext, response in zip(SLOW, responses, strict=True):
        assert response.status_code == 200, (ext, response.text)
        assert response.headers["content-type"] == f"image/{ext.split('?')[0]}"
        assert int(response.headers["content-length"]) == len(response.content) > 0
    assert server.process.wait(30) == 0
    assert "Traceback" not in server.log(), server.log()


def test_an_upload_cut_by_shutdown_is_a_json_503(server_factory) -> None:  # type: ignore[no-untyped-def]
    """An upload still sending its body when the shutdown timeout ends is cancelled: the client
    is told 503 + Retry-After in the reference's shape (it used to get uvicorn's plain-text
    500 and the log a traceback), and the node still exits 0."""
    server = server_factory({"IMGPRO_SHUTDOWN_TIMEOUT": "1"})
    upload = HeldUpload(server.url)  # the handler is reading the body: in flight
    upload.sock.sendall(upload.body[:50])  # part of it, then nothing more
    server.process.send_signal(signal.SIGTERM)
    with upload.sock:
        answer = b""
        while chunk := upload.sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 "), answer[:300]
    headers = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
    assert headers[b"content-type"] == b"application/json"
    assert int(headers[b"retry-after"]) > 0
    parsed = json.loads(body)
    assert parsed["error"] == "service_unavailable" and parsed["action"]["type"] == "wait"
    assert server.process.wait(30) == 0
    assert "Traceback" not in server.log() and "Exception in ASGI" not in server.log()
