"""S3 stopped and started again, behind a TCP proxy in front of moto (moto keeps its objects in
memory, so stopping moto itself would lose the bucket: the proxy is the "S3 endpoint" that goes
away and comes back, as a real S3 endpoint does, with its data).

While it is away, uploads and uncached CDN requests are 503 + Retry-After, reads of metadata
keep working, /readyz names the store; once it is back, everything stored before is served
unchanged and uploads work again; refused uploads left nothing behind and counted nothing.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.api.conftest import fresh_email, tiny_png
from tests.conftest import S3_ENV, start_moto, start_server, stop_server
from tests.faults.conftest import METRICS, assert_consistent, assert_wait_503, metric, stored_state
from tests.faults.tcp_proxy import TcpProxy


def test_s3_stopped_and_restarted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in S3_ENV.items():  # this process reads the bucket too, at the end
        monkeypatch.setenv(name, value)
    moto = start_moto(tmp_path)
    port = urlsplit(moto.endpoint_url).port
    assert port is not None
    endpoint = TcpProxy("127.0.0.1", port).start()
    storage = f"s3://imgpro-{uuid.uuid4().hex[:12]}/originals"
    proxied = f"http://{endpoint.address}"
    data_dir = tmp_path / "node"
    server = start_server(data_dir, {
        **S3_ENV, **METRICS, "IMGPRO_STORAGE_URL": storage, "IMGPRO_S3_ENDPOINT_URL": proxied,
        "AWS_MAX_ATTEMPTS": "1", "IMGPRO_RECONCILE_SECONDS": "1",
        "IMGPRO_ORPHAN_GRACE_SECONDS": "2"})
    http = httpx.Client(base_url=server.url, timeout=60)
    try:
        key = http.post("/v1/keys", json={"email": fresh_email("s3")}).json()["key"]
        auth = {"Authorization": f"Bearer {key}"}
        images = {seed: tiny_png(40, 30, seed=seed) for seed in range(6)}
        before = [http.post("/v1/upload", headers=auth, files={"file": ("a.png", images[s])})
                  for s in range(3)]
        assert [a.status_code for a in before] == [201, 201, 201]
        srcs = [a.json()["src"].removeprefix(server.url) for a in before]
        assert http.get(srcs[0].replace(".png", ".webp"), params={"size": "s"}).status_code == 200

        endpoint.cut()
        refused = [http.post("/v1/upload", headers=auth, files={"file": ("b.png", images[3])})
                   for _ in range(3)]
        for answer in refused:
            assert_wait_503(answer)
        assert_wait_503(http.get(srcs[1].replace(".png", ".webp"), params={"size": "m"}))
        assert_wait_503(http.get(srcs[1]))  # the original as stored
        cached = http.get(srcs[0].replace(".png", ".webp"), params={"size": "s"})
        assert cached.status_code == 200 and cached.headers["x-cache"] == "memory"
        assert http.get("/v1/media", headers=auth).status_code == 200  # metadata: no S3
        ready = http.get("/readyz")
        assert_wait_503(ready)
        assert ready.json()["checks"]["store"].startswith("unreachable")
        assert ready.json()["checks"]["database"] == "ok"
        assert http.get("/healthz").status_code == 200

        endpoint.restore()
        after = [http.post("/v1/upload", headers=auth, files={"file": ("c.png", images[s])})
                 for s in (4, 5)]
        assert [a.status_code for a in after] == [201, 201], [a.text for a in after]
        for answer, seed in zip(before, range(3), strict=True):  # nothing lost
            assert http.get(answer.json()["src"].removeprefix(server.url)).content == images[seed]
        assert http.get("/readyz").status_code == 200

        assert metric(server.url, "imgpro_uploads_total") == 5
        assert metric(server.url, 'imgpro_upload_rejections_total{reason="service_unavailable"}') \
            == len(refused)
        stored = stored_state(f"sqlite+aiosqlite:///{data_dir / 'imgpro.db'}", storage,
                              s3_endpoint_url=moto.endpoint_url)
        assert_consistent(stored)
        assert len(stored.rows) == len(stored.originals) == 5  # the refused left nothing
        usage = http.get("/v1/usage", headers=auth).json()
        assert usage["uploads_used"] == 5
        assert usage["storage_used_bytes"] == sum(r["filesize"] for r in stored.rows)
        assert "Traceback" not in server.log(), server.log()
    finally:
        http.close()
        stop_server(server)
        endpoint.close()
        moto.stop()
