"""Issue 13 end to end: the shared rendition store over real processes on loopback.

moto in server mode holds the originals and (under another prefix) the renditions; the
rendition store is reached through a ``TcpProxy`` so a test can take it down and bring it back
with its objects intact. Two ``--role cdn`` nodes and one ``--role api`` node on a fresh
PostgreSQL database share both. Transforms are counted by each node's
``imgpro_transform_seconds_count``; the breaker is read from its metrics; waits are for events
with generous deadlines, never assertions on durations.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import pytest
from aiobotocore.session import get_session
from prometheus_client.parser import text_string_to_metric_families

from cache import digest_of
from tests.api.conftest import ApiServer, _admin
from tests.conftest import (
    S3_ENV,
    CorpusImage,
    MotoServer,
    RunningServer,
    free_port,
    stop_server,
)
from tests.faults.tcp_proxy import TcpProxy
from tests.scale.conftest import NodeFactory, start_nodes
from transformer import ENCODER_SETTINGS_VERSION, transform
from transformer.originals.s3 import S3OriginalsStore

REVALIDATE_SECONDS = 2
METRICS_TOKEN = "metrics-token-of-the-tests"
"""/metrics is served only with this bearer token (api/serving/metrics_access.py)."""
WAIT = 60.0
"""Deadline of every wait for an event (a loaded 2-core machine is slow, never wrong)."""
TEAM = "t"
V = ENCODER_SETTINGS_VERSION


def metric(node: RunningServer | ApiServer, name: str, **labels: str) -> float:
    """Sum of the samples ``name`` whose labels include ``labels``, from ``/metrics``."""
    text = httpx.get(f"{node.url}/metrics", timeout=30,
                     headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == name and labels.items() <= sample.labels.items())


def transforms(node: RunningServer) -> float:
    return metric(node, "imgpro_transform_seconds_count")


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {WAIT:g} s for {what}")
        time.sleep(0.1)


@dataclass
class Store:
    """The bucket, read and written straight through moto (never through the gate)."""

    moto: MotoServer
    bucket: str

    def env(self, endpoint: str | None = None, **settings: str) -> dict[str, str]:
        """A node's environment: originals and renditions in this bucket."""
        return {**S3_ENV, "IMGPRO_STORAGE_URL": f"s3://{self.bucket}/originals",
                "IMGPRO_S3_ENDPOINT_URL": self.moto.endpoint_url,
                "IMGPRO_RENDITION_STORE_URL": f"s3://{self.bucket}/renditions",
                "IMGPRO_RENDITION_STORE_ENDPOINT_URL": endpoint or self.moto.endpoint_url,
                "IMGPRO_REVALIDATE_SECONDS": str(REVALIDATE_SECONDS),
                "IMGPRO_METRICS_TOKEN": METRICS_TOKEN, **settings}

    def put_original(self, uid: str, data: bytes, team: str = TEAM) -> None:
        async def put() -> None:
            store = S3OriginalsStore(self.bucket, "originals", endpoint_url=self.moto.endpoint_url)
            try:
                await store.ensure_bucket()
                await store.put(team, uid, data)
            finally:
                await store.close()

        asyncio.run(put())

    def put_rendition(self, team: str, uid: str, variant: str, data: bytes, state: str) -> None:
        """An object as another node's write would leave it."""

        async def put() -> None:
            async with get_session().create_client("s3",
                                                   endpoint_url=self.moto.endpoint_url) as s3:
                await s3.put_object(Bucket=self.bucket, Key=f"renditions/{team}/{uid}/{variant}",
                                    Body=data, Metadata={"digest": digest_of(data),
                                                         "state": state})

        asyncio.run(put())

    def body(self, team: str, uid: str, variant: str) -> bytes:
        async def read() -> bytes:
            async with get_session().create_client("s3",
                                                   endpoint_url=self.moto.endpoint_url) as s3:
                answer = await s3.get_object(Bucket=self.bucket,
                                             Key=f"renditions/{team}/{uid}/{variant}")
                async with answer["Body"] as stream:
                    return bytes(await stream.read())

        return asyncio.run(read())

    def renditions(self, team: str, uid: str) -> dict[str, str]:
        """Stored objects of one image: rendition variant -> its state metadata."""

        async def listing() -> dict[str, str]:
            async with get_session().create_client("s3",
                                                   endpoint_url=self.moto.endpoint_url) as s3:
                prefix = f"renditions/{team}/{uid}/"
                answer = await s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
                found = {}
                for item in answer.get("Contents", []):
                    head = await s3.head_object(Bucket=self.bucket, Key=item["Key"])
                    found[item["Key"].removeprefix(prefix)] = head["Metadata"].get("state", "")
                return found

        return asyncio.run(listing())


def fresh_store(moto: MotoServer) -> Store:
    return Store(moto, f"imgpro-{uuid.uuid4().hex[:12]}")


def get(node: RunningServer, path: str) -> httpx.Response:
    response = httpx.get(node.url + path, timeout=60)
    assert response.status_code == 200, (node.url, path, response.text)
    return response


@dataclass
class Cluster:
    cdn: list[RunningServer]
    api: ApiServer
    store: Store
    gate: TcpProxy


@pytest.fixture(scope="module")
def cluster(moto_server: MotoServer, postgres_databases: Callable[[], tuple[str, str]],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    store = fresh_store(moto_server)
    moto_port = urlsplit(moto_server.endpoint_url).port
    assert moto_port is not None
    gate = TcpProxy("127.0.0.1", moto_port).start()
    database, database_url = postgres_databases()
    cdn_port = free_port()
    shared = store.env(f"http://{gate.address}", IMGPRO_RENDITION_STORE_BREAKER_SECONDS="1",
                       IMGPRO_SECRET_KEY=secrets.token_urlsafe(32))
    cdn_env = {**shared, "IMGPRO_ROLE": "cdn"}
    api_env = {**shared, "IMGPRO_ROLE": "api", "IMGPRO_DATABASE_URL": database_url,
               "IMGPRO_TRUSTED_PROXIES": "127.0.0.1", "IMGPRO_RETENTION_SWEEP_SECONDS": "0.5",
               "IMGPRO_CDN_URL": f"http://127.0.0.1:{cdn_port}"}
    root = tmp_path_factory.mktemp("renditions")
    try:
        servers = start_nodes([root / "cdn1", root / "cdn2", root / "api"],
                              [{**cdn_env, "IMGPRO_PORT": str(cdn_port)}, cdn_env, api_env])
        api = ApiServer(servers[2], database_url)
        yield Cluster(servers[:2], api, store, gate)
        api.close()
        with ThreadPoolExecutor(len(servers)) as pool:
            assert list(pool.map(stop_server, servers)) == [0] * len(servers)
    finally:
        gate.close()
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def photo(corpus: list[CorpusImage]) -> CorpusImage:
    return next(i for i in corpus if i.path.name == "photo-yellowflower-1920x1080.jpg")


def test_one_node_renders_and_the_other_serves_it_from_the_store(
        cluster: Cluster, photo: CorpusImage) -> None:
    a, b = cluster.cdn
    uid = "shared1"
    cluster.store.put_original(uid, photo.data)
    before_a, before_b = transforms(a), transforms(b)

    made = get(a, f"/{TEAM}/{uid}.png?size=m")  # PNG: final on the miss
    assert made.headers["x-cache"] == "miss" and made.headers["x-rendition"] == "final"
    wait_for(lambda: cluster.store.renditions(TEAM, uid) == {f"m.png.{V}": "final"},
             "node A's write-behind")
    served = get(b, f"/{TEAM}/{uid}.png?size=m")
    assert served.headers["x-cache"] == "store"
    assert served.content == made.content and served.headers["etag"] == made.headers["etag"]
    assert (transforms(a), transforms(b)) == (before_a + 1, before_b), "B did not transform"
    assert get(b, f"/{TEAM}/{uid}.png?size=m").headers["x-cache"] == "memory"  # filled

    # WebP is answered provisional and refined by its maker, whose final replaces the
    # provisional object in the store; the other node then takes the final from there.
    fast = get(a, f"/{TEAM}/{uid}.webp?size=s")
    assert fast.headers["x-rendition"] == "provisional"
    wait_for(lambda: cluster.store.renditions(TEAM, uid).get(f"s.webp.{V}") == "final",
             "node A's refined WebP in the store")
    final = get(b, f"/{TEAM}/{uid}.webp?size=s")
    assert final.headers["x-cache"] == "store" and final.headers["x-rendition"] == "final"
    assert transforms(b) == before_b
    assert metric(b, "imgpro_refine_total") == 0, "B encodes nothing, not even the final"
    assert metric(b, "imgpro_cache_requests_total", layer="store", result="hit") >= 2


def test_sixteen_concurrent_requests_over_two_nodes_transform_once(
        cluster: Cluster, photo: CorpusImage) -> None:
    uid = "burst1"
    cluster.store.put_original(uid, photo.data)
    nodes = cluster.cdn * 8
    before = sum(transforms(n) for n in cluster.cdn)
    leases = sum(metric(n, "imgpro_rendition_store_leases_total", result="acquired")
                 for n in cluster.cdn)
    with ThreadPoolExecutor(16) as pool:
        # PNG, final on the miss: no refine may swap the bytes during the burst
        answers = list(pool.map(lambda n: get(n, f"/{TEAM}/{uid}.png?size=l"), nodes))
    assert len({a.content for a in answers}) == 1, "every answer has the same bytes"
    assert sum(transforms(n) for n in cluster.cdn) == before + 1
    assert sum(metric(n, "imgpro_rendition_store_leases_total", result="acquired")
               for n in cluster.cdn) == leases + 1
    assert {a.headers["x-cache"] for a in answers} <= {"miss", "coalesced", "store"}


def test_without_the_lease_at_most_two_transforms(nodes: NodeFactory, moto_server: MotoServer,
                                                  photo: CorpusImage) -> None:
    store = fresh_store(moto_server)
    env = store.env(IMGPRO_RENDITION_STORE_LEASE_SECONDS="0", IMGPRO_ROLE="cdn")
    a, b = nodes(env, env)
    store.put_original("burst2", photo.data)
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda n: get(n, f"/{TEAM}/burst2.png?size=l"), [a, b] * 8))
    assert len({a.content for a in answers}) == 1
    assert 1 <= transforms(a) + transforms(b) <= 2
    assert metric(a, "imgpro_rendition_store_leases_total") == 0


def test_a_node_restarted_on_an_empty_data_dir_serves_from_the_store(
        nodes: NodeFactory, moto_server: MotoServer, photo: CorpusImage) -> None:
    store = fresh_store(moto_server)
    env = store.env(IMGPRO_ROLE="cdn")
    (first,) = nodes(env)
    store.put_original("restart1", photo.data)
    assert get(first, f"/{TEAM}/restart1.avif?size=s").headers["x-rendition"] == "provisional"
    wait_for(lambda: store.renditions(TEAM, "restart1").get(f"s.avif.{V}") == "final",
             "the refined AVIF in the store")
    assert stop_server(first) == 0
    (fresh,) = nodes(env)  # a new data dir: no disk cache
    assert fresh.data_dir != first.data_dir
    served = get(fresh, f"/{TEAM}/restart1.avif?size=s")
    assert served.headers["x-cache"] == "store" and served.headers["x-rendition"] == "final"
    assert transforms(fresh) == 0 and metric(fresh, "imgpro_refine_total") == 0
    assert served.content == store.body(TEAM, "restart1", f"s.avif.{V}")  # the maker's final


def test_a_provisional_from_the_store_is_left_to_its_maker_then_taken_final(
        nodes: NodeFactory, moto_server: MotoServer, photo: CorpusImage) -> None:
    store = fresh_store(moto_server)
    (node,) = nodes(store.env(IMGPRO_ROLE="cdn", IMGPRO_RENDITION_STORE_REFINE_GRACE="1"))
    fast = transform(photo.data, "s", "webp", effort="fast").data
    stand_in = transform(photo.data, "m", "webp").data  # other bytes: "the maker's final"
    variant = f"s.webp.{V}"
    for uid in ("maker-alive", "maker-gone"):
        store.put_original(uid, photo.data)
        store.put_rendition(TEAM, uid, variant, fast, "provisional")
        first = get(node, f"/{TEAM}/{uid}.webp?size=s")
        assert first.headers["x-cache"] == "store" and first.content == fast
        assert first.headers["x-rendition"] == "provisional"
    assert metric(node, "imgpro_refine_total") == 0, "left to its maker for the grace"

    store.put_rendition(TEAM, "maker-alive", variant, stand_in, "final")
    wait_for(lambda: get(node, f"/{TEAM}/maker-alive.webp?size=s").content == stand_in,
             "the maker's final, picked up from the store after the grace")
    assert metric(node, "imgpro_refine_total", result="from_store") == 1

    # Nobody refined the other one: after the grace this node does, and stores the final.
    wait_for(lambda: get(node, f"/{TEAM}/maker-gone.webp?size=s").headers["x-rendition"]
             == "final", "this node's own final encode")
    assert metric(node, "imgpro_refine_total", result="refined") == 1
    wait_for(lambda: store.renditions(TEAM, "maker-gone") == {variant: "final"},
             "the final replacing the provisional in the store")
    assert transforms(node) == 0


def upload(cluster: Cluster, photo: CorpusImage) -> tuple[str, str, str, str]:
    """An image uploaded through the API node: (key, media id, team hash, CDN path stem)."""
    key = cluster.api.new_key()["key"]
    answer = cluster.api.upload(photo.data, key=key, filename="photo.jpg")
    assert answer.status_code == 201, answer.text
    media = answer.json()
    stem = media["src"].removeprefix(cluster.cdn[0].url).rsplit(".", 1)[0]
    team_hash = stem.split("/")[1]
    return key, media["id"], team_hash, stem


def render_everywhere(cluster: Cluster, team_hash: str, uid: str, stem: str) -> None:
    a, b = cluster.cdn
    for ext in ("jpeg", "png"):
        get(a, f"{stem}.{ext}?size=s")
    wait_for(lambda: len(cluster.store.renditions(team_hash, uid)) == 2, "both renditions stored")
    for ext in ("jpeg", "png"):
        assert get(b, f"{stem}.{ext}?size=s").headers["x-cache"] == "store"


def gone_everywhere(cluster: Cluster, stem: str) -> None:
    deadline = time.monotonic() + REVALIDATE_SECONDS + WAIT
    for node in cluster.cdn:  # both hold the renditions in memory: revalidation stops them
        while httpx.get(f"{node.url}{stem}.jpeg?size=s", timeout=60).status_code == 200:
            assert time.monotonic() < deadline, f"{node.url} still serves a deleted image"
            time.sleep(0.2)
        answer = httpx.get(f"{node.url}{stem}.png?size=s", timeout=60)
        assert answer.status_code == 404 and answer.json()["error"] == "not_found"


def removed(cluster: Cluster, media_id: str) -> bool:
    rows = cluster.api.sql("SELECT original_removed FROM media WHERE id = :i", i=media_id)
    return bool(rows[0][0])


def test_delete_through_the_api_purges_the_store(cluster: Cluster, photo: CorpusImage) -> None:
    key, media_id, team_hash, stem = upload(cluster, photo)
    render_everywhere(cluster, team_hash, media_id, stem)
    deleted = cluster.api.request("DELETE", f"/v1/media/{media_id}", key=key)
    assert deleted.status_code == 200, deleted.text
    assert cluster.store.renditions(team_hash, media_id) == {}, "purged before the answer"
    assert removed(cluster, media_id)
    gone_everywhere(cluster, stem)


def test_a_store_outage_during_delete_is_retried_by_the_sweeper(
        cluster: Cluster, photo: CorpusImage) -> None:
    key, media_id, team_hash, stem = upload(cluster, photo)
    render_everywhere(cluster, team_hash, media_id, stem)
    cluster.gate.cut()
    try:
        deleted = cluster.api.request("DELETE", f"/v1/media/{media_id}", key=key)
        assert deleted.status_code == 200, deleted.text  # the delete itself does not wait
        assert len(cluster.store.renditions(team_hash, media_id)) == 2, "not purged yet"
        assert not removed(cluster, media_id), "left for the sweeper"
        gone_everywhere(cluster, stem)  # the original is gone: no node serves it meanwhile
        # The sweeper redoes a removal once its deleter's lease (5 minutes) passed: pass it.
        cluster.api.sql("UPDATE media SET removal_lease = removal_lease - 400 WHERE id = :i",
                        i=media_id)
    finally:
        cluster.gate.restore()
    wait_for(lambda: removed(cluster, media_id), "the sweeper's retry")
    assert cluster.store.renditions(team_hash, media_id) == {}


def test_store_down_the_breaker_opens_and_store_use_resumes_by_itself(
        nodes: NodeFactory, moto_server: MotoServer, photo: CorpusImage) -> None:
    store = fresh_store(moto_server)
    moto_port = urlsplit(moto_server.endpoint_url).port
    assert moto_port is not None
    gate = TcpProxy("127.0.0.1", moto_port).start()
    try:
        env = store.env(f"http://{gate.address}", IMGPRO_ROLE="cdn",
                        IMGPRO_RENDITION_STORE_BREAKER_FAILURES="2",
                        IMGPRO_RENDITION_STORE_BREAKER_SECONDS="3")
        (node,) = nodes(env)
        uids = [f"down{i}" for i in range(8)]
        for uid in uids:
            store.put_original(uid, photo.data)
        cold = iter(f"/{TEAM}/{uid}.{ext}?size={size}" for uid in uids
                    for ext in ("jpeg", "png") for size in ("s", "m"))

        def state() -> float:
            return metric(node, "imgpro_rendition_store_breaker_state")

        assert state() == 0
        gate.cut()
        while state() != 2:  # misses still answered from a transform, breaker counting
            assert get(node, next(cold)).headers["x-cache"] == "miss"
        clean = 0
        for _ in range(4):
            seen = (metric(node, "imgpro_rendition_store_errors_total"),
                    metric(node, "imgpro_rendition_store_lookups_total", result="skipped"),
                    metric(node, "imgpro_rendition_store_breaker_transitions_total"))
            assert get(node, next(cold)).headers["x-cache"] == "miss"
            after = (metric(node, "imgpro_rendition_store_errors_total"),
                     metric(node, "imgpro_rendition_store_lookups_total", result="skipped"),
                     metric(node, "imgpro_rendition_store_breaker_transitions_total"))
            if after[2] == seen[2]:  # no probe went out meanwhile: the store was not touched
                clean += 1
                assert after[:2] == (seen[0], seen[1] + 1)
        assert clean >= 1

        gate.restore()
        wait_for(lambda: get(node, next(cold)) is not None and state() == 0,
                 "the probe to close the breaker")
        uid = "down-after"
        store.put_original(uid, photo.data)
        get(node, f"/{TEAM}/{uid}.jpeg?size=s")
        wait_for(lambda: store.renditions(TEAM, uid) == {f"s.jpeg.{V}": "final"},
                 "a write after recovery")
    finally:
        gate.close()
