"""SIGTERM: a node stops accepting at once, finishes what is in flight, and exits 0.

In flight here means slow transforms (large AVIF renditions with the caches off, queued on
one transform thread per worker so that the drain lasts a while); they must all complete
with 200 after the signal, while new connections are refused (a load balancer then sends
them to another node), and the process must end with status 0 within uvicorn's
graceful-shutdown bound.
"""

from __future__ import annotations

import concurrent.futures
import signal
import time

import httpx
import pytest

from tests.conftest import CorpusImage, RunningServer
from tests.scale.conftest import place

SLOW = ["avif?size=l", "avif?size=m"]


def transforms_in_flight(server: RunningServer) -> float:
    """imgpro_transform_queue_depth from /metrics (summed over the workers)."""
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
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


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_drains_in_flight_transforms_and_exits_0(
        server_factory, corpus: list[CorpusImage], workers: int) -> None:  # type: ignore[no-untyped-def]
    server = server_factory({"IMGPRO_ROLE": "cdn", "IMGPRO_MEMORY_CACHE_MB": "0",
                             "IMGPRO_DISK_CACHE_MB": "0", "IMGPRO_TRANSFORM_THREADS": "1"},
                            args=["--workers", str(workers)])
    big = next(i for i in corpus if i.path.name == "art-elephants-5640x3172.jpg")
    place(server, "big", big.data)

    def fetch(ext: str) -> httpx.Response:
        with httpx.Client(timeout=60) as client:  # one connection per request
            return client.get(f"{server.url}/t/big.{ext}")

    with concurrent.futures.ThreadPoolExecutor(len(SLOW)) as pool:
        pending = [pool.submit(fetch, ext) for ext in SLOW]
        deadline = time.monotonic() + 30
        while transforms_in_flight(server) < 1:
            assert time.monotonic() < deadline, "the transforms never started"
            time.sleep(0.05)

        server.process.send_signal(signal.SIGTERM)
        while not refused(server.url):
            assert time.monotonic() < deadline + 30, "still accepting after SIGTERM"
            time.sleep(0.05)
        still_running = sum(not f.done() for f in pending)

        responses = [f.result() for f in pending]
    assert still_running >= 1, "nothing was in flight when new connections were refused"
    for ext, response in zip(SLOW, responses, strict=True):
        assert response.status_code == 200, (ext, response.text)
        assert response.headers["content-type"] == f"image/{ext.split('?')[0]}"
        assert int(response.headers["content-length"]) == len(response.content) > 0
    assert server.process.wait(30) == 0
    assert "Traceback" not in server.log(), server.log()
