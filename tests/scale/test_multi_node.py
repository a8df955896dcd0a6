"""Issue 4's end-to-end test: several stateless nodes sharing PostgreSQL and S3.

Real processes on loopback: moto S3, two ``--role cdn`` nodes (no database) and two
``--role api`` nodes on one fresh PostgreSQL database, each node with its own data dir as on
separate machines. An image uploaded through API node 1 is served by both CDN nodes; deleted
through API node 2 (which has no CDN to purge), it stops being served by both CDN nodes
within IMGPRO_REVALIDATE_SECONDS (+ slack); per-IP rate limits and quotas hold across the
two API nodes because their counters are single conditional statements in PostgreSQL.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
from aiobotocore.session import get_session

from tests.api.conftest import ApiServer, _admin, confirm_link, fresh_email, fresh_ip, tiny_png
from tests.conftest import CorpusImage, MotoServer, RunningServer, free_port, stop_server
from tests.scale.conftest import s3_env, start_nodes

REVALIDATE_SECONDS = 2
SLACK_SECONDS = 10
"""Polling allowance on a loaded machine; the assertion is "within the bound", not speed."""


@dataclass
class Cluster:
    cdn: list[RunningServer]
    api: list[ApiServer]
    bucket: str
    moto: MotoServer

    def s3_keys(self, prefix: str) -> list[str]:
        """Object keys in the bucket under ``originals/<prefix>`` (straight from S3)."""

        async def listing() -> list[str]:
            session = get_session()
            async with session.create_client("s3", endpoint_url=self.moto.endpoint_url) as s3:
                answer = await s3.list_objects_v2(Bucket=self.bucket,
                                                  Prefix=f"originals/{prefix}")
                return [item["Key"] for item in answer.get("Contents", [])]

        return asyncio.run(listing())


@pytest.fixture(scope="module")
def cluster(moto_server: MotoServer, postgres_databases: Callable[[], tuple[str, str]],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    database, database_url = postgres_databases()
    storage = s3_env(moto_server)
    bucket = storage["IMGPRO_STORAGE_URL"].removeprefix("s3://").split("/")[0]
    cdn_ports = [free_port(), free_port()]
    shared = {**storage, "IMGPRO_REVALIDATE_SECONDS": str(REVALIDATE_SECONDS),
              "IMGPRO_SECRET_KEY": secrets.token_urlsafe(32)}
    cdn_envs = [{**shared, "IMGPRO_ROLE": "cdn", "IMGPRO_PORT": str(port)} for port in cdn_ports]
    api_envs = [{**shared, "IMGPRO_ROLE": "api", "IMGPRO_DATABASE_URL": database_url,
                 "IMGPRO_TRUSTED_PROXIES": "127.0.0.1",
                 "IMGPRO_CDN_URL": f"http://127.0.0.1:{cdn_ports[0]}"}] * 2
    root = tmp_path_factory.mktemp("cluster")
    names = ["cdn1", "cdn2", "api1", "api2"]
    try:
        servers = start_nodes([root / name for name in names], [*cdn_envs, *api_envs])
        apis = [ApiServer(server, database_url) for server in servers[2:]]
        yield Cluster(servers[:2], apis, bucket, moto_server)
        for api in apis:
            api.close()
        with ThreadPoolExecutor(len(servers)) as pool:
            assert list(pool.map(stop_server, servers)) == [0] * len(servers)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


def test_cdn_nodes_serve_uploads_until_deleted_elsewhere(cluster: Cluster,
                                                         corpus: list[CorpusImage]) -> None:
    api1, api2 = cluster.api
    key = api1.new_key()["key"]
    photo = next(i for i in corpus if i.path.name == "photo-ladybird-2560x1600.jpg")
    uploaded = api1.upload(photo.data, key=key, filename="ladybird.jpg")
    assert uploaded.status_code == 201, uploaded.text
    media = uploaded.json()
    assert media["src"].startswith(cluster.cdn[0].url + "/")
    path = media["src"].removeprefix(cluster.cdn[0].url)  # /{team_hash}/{id}.jpeg
    stem = path.rsplit(".", 1)[0]

    renditions = {}
    for cdn in cluster.cdn:
        original = httpx.get(cdn.url + path, timeout=60)
        assert original.status_code == 200 and original.content == photo.data
        first = httpx.get(f"{cdn.url}{stem}.webp?size=s", timeout=60)
        assert first.status_code == 200 and first.headers["x-cache"] == "miss", first.text
        again = httpx.get(f"{cdn.url}{stem}.webp?size=s", timeout=60)
        assert again.headers["x-cache"] == "memory"
        # The same bytes, unless the refine lane made the final one in between (also right).
        assert (again.content == first.content) \
            == (again.headers["x-rendition"] == first.headers["x-rendition"])
        renditions[cdn.url] = first.content
        assert not (cdn.data_dir / "imgpro.db").exists(), "a CDN node needs no database"
    assert len(set(renditions.values())) == 1, "both nodes render the same bytes"
    assert api2.request("GET", f"/v1/media/{media['id']}", key=key).status_code == 200

    deleted = api2.request("DELETE", f"/v1/media/{media['id']}", key=key)
    assert deleted.status_code == 200, deleted.text
    deadline = time.monotonic() + REVALIDATE_SECONDS + SLACK_SECONDS
    for cdn in cluster.cdn:  # both hold the rendition in memory: only revalidation stops it
        while (answer := httpx.get(f"{cdn.url}{stem}.webp?size=s", timeout=60)).status_code \
                == 200:
            assert time.monotonic() < deadline, f"{cdn.url} still serves a deleted image"
            time.sleep(0.2)
        assert answer.status_code == 404 and answer.json()["error"] == "not_found"
        assert httpx.get(cdn.url + path, timeout=60).status_code == 404
        leftovers = [p for p in (cdn.data_dir / "cache").rglob("*") if p.is_file()]
        assert leftovers == [], "the revalidating node purges its disk cache too"
    assert api1.request("GET", f"/v1/media/{media['id']}", key=key).status_code == 404
    assert cluster.s3_keys(stem.split("/")[1]) == []


def test_per_ip_limit_holds_across_api_nodes(cluster: Cluster) -> None:
    ip = fresh_ip()
    nodes = cluster.api * 12  # 24 anonymous uploads, alternating nodes, all at once
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda n: nodes[n].upload(tiny_png(seed=n), ip=ip),
                                range(len(nodes))))
    statuses = [a.status_code for a in answers]
    assert statuses.count(201) == 20 and statuses.count(429) == 4, statuses
    for api in cluster.api:  # one more on either node: over the limit
        refused = api.upload(ip=ip)
        assert refused.status_code == 429 and refused.json()["error"] == "rate_limited"
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert cluster.api[0].upload(ip=fresh_ip()).status_code == 201  # others are not affected


def test_quota_race_across_api_nodes_grants_the_last_unit_once(cluster: Cluster) -> None:
    api1, api2 = cluster.api
    created = api1.new_key()
    team = int(api1.sql("SELECT team_id FROM api_keys WHERE key_id = :k",
                        k=created["key_id"])[0][0])
    month = datetime.now(UTC).strftime("%Y-%m")
    api1.sql("INSERT INTO usage_months (team_id, month, uploads) VALUES (:t, :m, 99)",
             t=team, m=month)  # free plan: 100 uploads a month, one left
    racers = [api1, api2] * 3
    with ThreadPoolExecutor(len(racers)) as pool:
        answers = list(pool.map(lambda n: racers[n].upload(tiny_png(seed=n), key=created["key"]),
                                range(len(racers))))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201, 413, 413, 413, 413, 413], [a.text for a in answers]
    usage = api2.request("GET", "/v1/usage", key=created["key"]).json()
    assert usage["uploads_used"] == 100
    team_hash = api1.sql("SELECT hash FROM teams WHERE id = :t", t=team)[0][0]
    assert len(cluster.s3_keys(f"{team_hash}/")) == 1, "the losers' originals were removed"


def test_links_signed_by_one_node_verify_on_the_other(cluster: Cluster) -> None:
    api1, api2 = cluster.api
    email = fresh_email("cross")
    api1.new_key(email)
    (link,) = api1.links_to(email)
    on_other = api2.url + link[link.index("/v1/verify"):]
    page = confirm_link(on_other)
    assert page.status_code == 200, page.text
    assert api2.sql("SELECT verified FROM accounts WHERE email = :e", e=email) == [(True,)]


