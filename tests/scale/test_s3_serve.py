"""``imgpro serve`` with originals in S3 (moto over real HTTP), end to end through the API.

Also what happens when the bucket is missing (created at start-up, or a clear refusal to
start) and when storage goes down: 503 with Retry-After from the CDN and the API, never a
500 or a traceback in the response.
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import subprocess
import sys
import uuid

import httpx
import pytest
from PIL import Image

from tests.api.conftest import fresh_email, fresh_ip
from tests.conftest import (
    ROOT,
    S3_ENV,
    CorpusImage,
    MotoServer,
    RunningServer,
    free_port,
    start_server,
)
from tests.scale.conftest import NodeFactory, s3_env
from transformer.originals.s3 import PART_SIZE, S3OriginalsStore


def in_bucket(moto: MotoServer, env: dict[str, str], team: str, uid: str) -> bytes | None:
    """The original as S3 holds it (read with our store, straight from moto), or None."""
    bucket, _, prefix = env["IMGPRO_STORAGE_URL"].removeprefix("s3://").partition("/")

    async def read() -> bytes | None:
        store = S3OriginalsStore(bucket, prefix, endpoint_url=moto.endpoint_url)
        try:
            return await store.get(team, uid) if await store.head(team, uid) else None
        finally:
            await store.close()

    return asyncio.run(read())


def noise_png(min_bytes: int) -> bytes:
    """An incompressible PNG of at least ``min_bytes`` (to force a multipart upload)."""
    side = int((min_bytes / 3) ** 0.5) + 16
    pixels = random.Random(7).randbytes(side * side * 3)
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), pixels).save(out, format="PNG", compress_level=0)
    assert len(out.getvalue()) >= min_bytes
    return out.getvalue()


def new_key(server: RunningServer) -> str:
    response = httpx.post(f"{server.url}/v1/keys", json={"email": fresh_email("s3")},
                          headers={"X-Forwarded-For": fresh_ip()})
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def test_upload_lands_in_s3_and_the_cdn_serves_from_it(
        nodes: NodeFactory, moto_server: MotoServer, corpus: list[CorpusImage]) -> None:
    env = s3_env(moto_server)  # a bucket that does not exist yet: created at start-up
    (server,) = nodes({**env, "IMGPRO_TRUSTED_PROXIES": "127.0.0.1"})
    key = new_key(server)
    auth = {"Authorization": f"Bearer {key}"}
    photo = next(i for i in corpus if i.path.name == "photo-ladybird-2560x1600.jpg")
    big = noise_png(PART_SIZE + 1024 * 1024)
    with httpx.Client(base_url=server.url, timeout=60, headers=auth) as client:
        uploaded = []
        for name, data in (("photo.jpg", photo.data), ("big.png", big)):
            response = client.post("/v1/upload", files={"file": (name, data)})
            assert response.status_code == 201, response.text
            uploaded.append((response.json(), data))
        for media, data in uploaded:
            team, _, uid = media["src"].removeprefix(server.url + "/").rpartition(".")[0] \
                .partition("/")
            assert in_bucket(moto_server, env, team, uid) == data
            original = client.get(media["src"])  # streamed from S3 unchanged
            assert original.status_code == 200 and original.content == data
            small = client.get(media["src"].rsplit(".", 1)[0] + ".webp", params={"size": "s"})
            assert small.status_code == 200, small.text
            with Image.open(io.BytesIO(small.content)) as image:
                assert image.format == "WEBP" and min(image.size) == 320
        assert not (server.data_dir / "originals").exists() or \
            not any((server.data_dir / "originals").rglob("*")), "originals must not be local"

        media, _ = uploaded[0]
        assert client.delete(f"/v1/media/{media['id']}").status_code == 200
        team, uid = media["src"].removeprefix(server.url + "/").rsplit(".", 1)[0].split("/")
        assert in_bucket(moto_server, env, team, uid) is None
        gone = client.get(media["src"].rsplit(".", 1)[0] + ".webp", params={"size": "s"})
        assert gone.status_code == 404 and gone.json()["error"] == "not_found"


def test_missing_bucket_that_may_not_be_created_stops_start_up(
        tmp_path, moto_server: MotoServer) -> None:  # type: ignore[no-untyped-def]
    env = {**s3_env(moto_server, f"absent-{uuid.uuid4().hex[:8]}"),
           "IMGPRO_S3_CREATE_BUCKET": "false"}
    with pytest.raises(RuntimeError) as failed:
        start_server(tmp_path / "node", env, timeout=30)
    assert "does not exist" in str(failed.value) and "IMGPRO_S3_CREATE_BUCKET" in str(failed.value)


def assert_wait_503(response: httpx.Response, code: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["retry-after"]) >= 1
    body = response.json()
    assert body["error"] == code and body["message"]
    assert body["action"] == {"type": "wait", "seconds": int(response.headers["retry-after"])}


def test_storage_outage_is_503_with_retry_after(nodes: NodeFactory, own_moto: MotoServer,
                                                corpus: list[CorpusImage]) -> None:
    # One attempt per S3 call (instead of 3 with backoff) keeps the test short.
    (server,) = nodes({**s3_env(own_moto), "IMGPRO_TRUSTED_PROXIES": "127.0.0.1",
                       "AWS_MAX_ATTEMPTS": "1"})
    photo = next(i for i in corpus if i.path.name == "photo-ladybird-2560x1600.jpg")
    with httpx.Client(base_url=server.url, timeout=60) as client:
        upload = client.post("/v1/upload", files={"file": ("a.jpg", photo.data)},
                             headers={"X-Forwarded-For": fresh_ip()})
        assert upload.status_code == 201, upload.text
        path = upload.json()["src"].removeprefix(server.url).rsplit(".", 1)[0]
        assert client.get(f"{path}.webp?size=s").status_code == 200

        own_moto.stop()
        # Cached and verified within IMGPRO_REVALIDATE_SECONDS: still served.
        cached = client.get(f"{path}.webp?size=s")
        assert cached.status_code == 200 and cached.headers["x-cache"] == "memory"
        assert_wait_503(client.get(f"{path}.avif?size=m"), "storage_unavailable")  # transform
        assert_wait_503(client.get(f"{path}.jpeg"), "storage_unavailable")  # original as is
        refused = client.post("/v1/upload", files={"file": ("b.jpg", photo.data)},
                              headers={"X-Forwarded-For": fresh_ip()})
        assert_wait_503(refused, "service_unavailable")
    assert "Traceback" not in server.log(), server.log()


def test_node_starts_while_storage_is_down_and_answers_503(nodes: NodeFactory) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: connections are refused
    (server,) = nodes({**S3_ENV, "IMGPRO_STORAGE_URL": "s3://imgpro/originals",
                       "IMGPRO_S3_ENDPOINT_URL": closed, "IMGPRO_ROLE": "cdn",
                       "AWS_MAX_ATTEMPTS": "1"})
    assert_wait_503(httpx.get(f"{server.url}/t/abc.webp?size=s", timeout=60),
                    "storage_unavailable")
    assert "not reachable at start-up" in server.log()


def test_imgpro_put_stores_into_s3(tmp_path, moto_server: MotoServer,  # type: ignore[no-untyped-def]
                                   corpus: list[CorpusImage]) -> None:
    photo = next(i for i in corpus if i.path.name == "photo-ladybird-2560x1600.jpg")
    env = s3_env(moto_server)
    run = subprocess.run(
        [sys.executable, "-m", "api", "put", str(photo.path), "--team", "ops", "--uid", "p1"],
        cwd=ROOT, env={**os.environ, **env, "PYTHONPATH": str(ROOT),
                       "IMGPRO_DATA_DIR": str(tmp_path)},
        capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().endswith("/ops/p1.jpeg")
    assert in_bucket(moto_server, env, "ops", "p1") == photo.data

    refused = subprocess.run(
        [sys.executable, "-m", "api", "put", str(photo.path)],
        cwd=ROOT, env={**os.environ, **env, "PYTHONPATH": str(ROOT),
                       "IMGPRO_DATA_DIR": str(tmp_path), "IMGPRO_S3_CREATE_BUCKET": "false",
                       "IMGPRO_STORAGE_URL": f"s3://absent-{uuid.uuid4().hex[:8]}/x"},
        capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "does not exist" in refused.stderr
    assert "Traceback" not in refused.stderr
