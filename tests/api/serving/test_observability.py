"""/metrics, request ids and access logs, on real servers (one and two worker processes)."""

from __future__ import annotations

import io
import json
import re
import time

import httpx
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import RunningServer
from transformer.origin.metrics import FLUSH_SECONDS

METRICS_TOKEN = "metrics-token-of-the-tests"
METRICS = {"IMGPRO_METRICS_TOKEN": METRICS_TOKEN}
"""/metrics is served only to whom the operator chose (api/serving/metrics_access.py)."""


def samples(server: RunningServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The server's metrics, from its metrics address if it has one, else its main port."""
    found = re.search(r"metrics on (http://\S+/metrics)", server.log())
    url = found.group(1) if found else f"{server.url}/metrics"
    response = httpx.get(url, headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def png(width: int = 400, height: int = 300) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (30, 140, 90)).save(out, "PNG")
    return out.getvalue()


def place(server: RunningServer, uid: str, data: bytes) -> None:
    target = server.data_dir / "originals" / "t" / uid
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def test_metrics_count_requests_cache_layers_and_transforms(server_factory) -> None:
    server = server_factory({"IMGPRO_ROLE": "cdn", **METRICS})
    place(server, "m1", png())
    url = f"{server.url}/t/m1.webp?size=s"
    for _ in range(3):
        assert httpx.get(url).status_code == 200
    assert httpx.get(f"{server.url}/t/missing.webp?size=s").status_code == 404
    found = samples(server)
    ok = value(found, "imgpro_http_requests_total", route="cdn", method="GET", status="200")
    assert ok == 3
    assert value(found, "imgpro_http_requests_total", route="cdn", method="GET",
                 status="404") == 1
    assert value(found, "imgpro_cache_requests_total", layer="memory", result="hit") == 2
    assert value(found, "imgpro_cache_requests_total", layer="disk", result="miss") == 1
    assert value(found, "imgpro_transform_seconds_count", format="webp", size="s") == 1
    assert value(found, "imgpro_http_response_bytes_total", route="cdn") > 0
    assert ("imgpro_transform_queue_depth", ()) in found
    assert value(found, "imgpro_transform_queue_depth") == 0


def test_request_id_is_echoed_or_made(server_factory) -> None:
    server = server_factory({"IMGPRO_ROLE": "cdn"})
    given = httpx.get(f"{server.url}/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = httpx.get(f"{server.url}/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert made.headers["x-request-id"] != "bad id with spaces"
    assert len(made.headers["x-request-id"]) == 16


def test_json_access_log_lines(server_factory) -> None:
    server = server_factory({"IMGPRO_ROLE": "cdn", "IMGPRO_LOG_FORMAT": "json"})
    place(server, "logged", png())
    httpx.get(f"{server.url}/t/logged.jpg?size=s", headers={"X-Request-ID": "req-1"})
    httpx.get(f"{server.url}/t/logged.jpg?size=s", headers={"X-Request-ID": "req-2"})
    from tests.conftest import stop_server

    assert stop_server(server) == 0
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    by_id = {line["request_id"]: line for line in lines}
    assert by_id["req-1"]["cache"] == "miss" and by_id["req-2"]["cache"] == "memory"
    for line in (by_id["req-1"], by_id["req-2"]):
        assert line["status"] == 200 and line["route"] == "cdn"
        assert line["path"] == "/t/logged.jpg" and line["duration_ms"] >= 0
        assert line["bytes"] > 0


def test_metrics_sum_over_workers(server_factory) -> None:
    # Its own metrics address, which every worker serves beside the main port.
    server = server_factory({"IMGPRO_ROLE": "cdn", "IMGPRO_WORKERS": "2",
                             "IMGPRO_METRICS_ADDRESS": "127.0.0.1:0"})
    place(server, "w", png())
    for _ in range(20):
        with httpx.Client() as client:  # new connections spread over the workers
            assert client.get(f"{server.url}/t/w.png?size=s").status_code == 200
    # Each worker hands its counts over at most FLUSH_SECONDS after a request (its own
    # /metrics flushes at once; the other worker's may lag by that much, and no more).
    deadline = time.monotonic() + FLUSH_SECONDS + 5
    while True:
        found = samples(server)
        counted = value(found, "imgpro_http_requests_total", route="cdn", method="GET",
                        status="200")
        if counted == 20 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert counted == 20
    assert value(found, "imgpro_http_request_duration_seconds_count", route="cdn") == 20


def test_upload_metrics(server_factory) -> None:
    server = server_factory({"IMGPRO_RATE_LIMITS": "off", **METRICS})
    ok = httpx.post(f"{server.url}/v1/upload", files={"file": ("a.png", png(), "image/png")})
    assert ok.status_code == 201, ok.text
    bad = httpx.post(f"{server.url}/v1/upload", files={"file": ("a.png", b"nope", "image/png")})
    assert bad.status_code == 400
    found = samples(server)
    assert value(found, "imgpro_uploads_total", source="upload") == 1
    assert value(found, "imgpro_upload_rejections_total", reason="unsupported_format") == 1


def test_access_log_writer_keeps_every_line_from_many_threads(tmp_path) -> None:
    import threading

    from api.serving.observability import AccessLog

    with (tmp_path / "access.log").open("wb") as out:
        log = AccessLog(out, interval=0.01, batch=7)

        def writer(n: int) -> None:
            for i in range(500):
                log.write(f"{n}-{i}\n".encode())

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        log.flush()
    lines = (tmp_path / "access.log").read_text().splitlines()
    assert sorted(lines) == sorted(f"{n}-{i}" for n in range(4) for i in range(500))
