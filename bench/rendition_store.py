"""What the shared rendition store buys a cluster, and what it costs a cold miss.

    python -m bench.rendition_store                       # the corpus x 4 copies, m webp/jpeg/avif
    python -m bench.rendition_store --copies 1 --formats jpeg   # a quick look

Real processes on loopback: moto in server mode (S3: the originals, and the renditions under
another prefix), two ``imgpro serve --role cdn`` nodes with the store on, and one node without
it as the baseline. Each photo of the corpus (``bench/corpus.py``) is stored ``--copies``
times under different ids, so there are enough distinct renditions to time.

1. cold pass: every rendition requested once, on node A and B alternately, one request at a
   time (latency of a cold miss with the store: its GET, its lease, the transform);
2. the refine lanes finish (WebP/AVIF finals replace the provisional objects in the store);
3. second pass: every rendition on the *other* node, ``--concurrency`` at a time: each one is
   a store hit (req/s, latency); total transforms must equal the distinct renditions, where
   two nodes without the store transform each one twice;
4. baseline, one node without the store and without a memory cache: the same renditions cold
   (latency of a cold miss without the store), then again as warm disk hits (req/s).

It prints a markdown report (also written to ``bench/results/rendition_store.md``). moto is a
Python process on the same two cores, much slower per request than S3 and sharing the CPU
with the nodes, so the store's share of a cold miss here is an upper bound.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.corpus import corpus_dir  # noqa: E402
from bench.server_process import RunningServer, ServerSpec, free_port, start  # noqa: E402

TEAM = "bench"
S3_ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
          "AWS_DEFAULT_REGION": "us-east-1"}
METRICS_TOKEN = "bench-metrics-token-0123456789"
"""/metrics answers only with a bearer token (api/serving/metrics_access.py)."""


@dataclass
class Pass:
    """One pass over the renditions: per-request latencies and the wall time of all."""

    name: str
    latencies: list[float]
    wall: float
    layers: dict[str, int]

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.wall if self.wall else 0.0

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def metric(node: RunningServer, name: str, **labels: str) -> float:
    text = httpx.get(f"{node.url}/metrics", timeout=30,
                     headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == name and labels.items() <= sample.labels.items())


def run_pass(name: str, requests: Sequence[tuple[RunningServer, str]],
             concurrency: int) -> Pass:
    client = httpx.Client(timeout=120, limits=httpx.Limits(max_keepalive_connections=32))

    def one(request: tuple[RunningServer, str]) -> tuple[float, str]:
        node, path = request
        started = time.perf_counter()
        answer = client.get(node.url + path)
        elapsed = time.perf_counter() - started
        if answer.status_code != 200:
            raise SystemExit(f"{path} on {node.url}: {answer.status_code} {answer.text[:200]}")
        return elapsed, answer.headers.get("x-cache", "?")

    for node in {node.url: node for node, _ in requests}.values():
        client.get(node.url + "/healthz")  # connections open before the clock starts
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, requests))
    wall = time.perf_counter() - started
    client.close()
    layers: dict[str, int] = {}
    for _, layer in results:
        layers[layer] = layers.get(layer, 0) + 1
    return Pass(name, [r[0] for r in results], wall, layers)


def upload(endpoint: str, bucket: str, photos: list[Path], copies: int) -> list[str]:
    """Store every photo ``copies`` times as an original; returns the ids."""
    from transformer.originals.s3 import S3OriginalsStore

    async def put_all() -> list[str]:
        store = S3OriginalsStore(bucket, "originals", endpoint_url=endpoint)
        ids = []
        try:
            await store.ensure_bucket()
            for copy in range(copies):
                for photo in photos:
                    uid = f"{photo.stem.replace('.', '-')}-{copy}"
                    await store.put(TEAM, uid, photo.read_bytes())
                    ids.append(uid)
        finally:
            await store.close()
        return ids

    return asyncio.run(put_all())


def wait_until(check: Callable[[], bool], what: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what}")
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", help="folder with a MANIFEST.tsv (default: bench/corpus.py)")
    parser.add_argument("--copies", type=int, default=4, help="ids per photo")
    parser.add_argument("--formats", default="webp,jpeg,avif")
    parser.add_argument("--size", default="m", choices=["s", "m", "l"])
    parser.add_argument("--concurrency", type=int, default=8, help="of the hit passes")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "rendition_store.md"))
    args = parser.parse_args()

    folder = corpus_dir(args.corpus)
    with (folder / "MANIFEST.tsv").open() as fh:
        photos = [folder / row["file"] for row in csv.DictReader(fh, delimiter="\t")]
    formats = args.formats.split(",")
    os.environ.update(S3_ENV)  # this process uploads the originals
    work = Path(tempfile.mkdtemp(prefix="imgpro-bench-renditions-"))
    servers: list[RunningServer] = []
    try:
        port = free_port()
        moto = start(ServerSpec("moto", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                         "-p", str(port)], ROOT, env=S3_ENV,
                                url=f"http://127.0.0.1:{port}", ready_path="/moto-api/"),
                     work / "logs")
        servers.append(moto)
        bucket = f"bench-{uuid.uuid4().hex[:10]}"
        ids = upload(moto.url, bucket, photos, args.copies)
        paths = [f"/{TEAM}/{uid}.{fmt}?size={args.size}" for uid in ids for fmt in formats]

        def node(name: str, store: bool, **extra: str) -> RunningServer:
            env = {**S3_ENV, "IMGPRO_ROLE": "cdn", "IMGPRO_PORT": "0",
                   "IMGPRO_DATA_DIR": str(work / name), "IMGPRO_ACCESS_LOG": "false",
                   "IMGPRO_METRICS_TOKEN": METRICS_TOKEN,
                   "IMGPRO_STORAGE_URL": f"s3://{bucket}/originals",
                   "IMGPRO_S3_ENDPOINT_URL": moto.url, **extra}
            if store:
                env["IMGPRO_RENDITION_STORE_URL"] = f"s3://{bucket}/renditions"
            server = start(ServerSpec(name, [sys.executable, "-m", "api", "serve"], ROOT,
                                      env=env, ready_path="/healthz"), work / "logs")
            servers.append(server)
            return server

        a, b = node("node-a", True), node("node-b", True)
        cluster = (a, b)
        cold = run_pass("cold, alternating nodes (store on)",
                        [(cluster[i % 2], p) for i, p in enumerate(paths)], 1)
        store_ms = {op: 1000 * sum(metric(n, "imgpro_rendition_store_request_seconds_sum", op=op)
                                   for n in cluster)
                    / max(1, sum(metric(n, "imgpro_rendition_store_request_seconds_count", op=op)
                                 for n in cluster)) for op in ("get", "lease")}
        refined = sum(1 for p in paths if not p.split("?")[0].endswith(".jpeg"))
        wait_until(lambda: sum(metric(n, "imgpro_refine_total") for n in cluster) >= refined
                   and sum(metric(n, "imgpro_rendition_store_writes_total", result="stored")
                           for n in cluster) >= len(paths) + refined,
                   "the refine lanes and their writes")
        second = run_pass("second pass, the other node (store hits)",
                          [(cluster[(i + 1) % 2], p) for i, p in enumerate(paths)],
                          args.concurrency)
        transforms = sum(metric(n, "imgpro_transform_seconds_count") for n in cluster)
        refines = sum(metric(n, "imgpro_refine_total") for n in cluster)
        for server in (a, b):
            server.stop()

        base = node("baseline", False, IMGPRO_MEMORY_CACHE_MB="0")
        base_cold = run_pass("baseline cold (no store)", [(base, p) for p in paths], 1)
        wait_until(lambda: metric(base, "imgpro_refine_total") >= refined, "baseline refines")
        base_disk = run_pass("baseline warm disk hits", [(base, p) for p in paths],
                             args.concurrency)
        base.stop()
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)

    lines = [
        f"# Shared rendition store, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"`python -m bench.rendition_store --copies {args.copies} --formats {args.formats} "
        f"--size {args.size} --concurrency {args.concurrency}`: {len(photos)} photos x "
        f"{args.copies} copies x {len(formats)} formats = {len(paths)} distinct renditions; "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end.",
        "",
        "| pass | requests | conc. | req/s | p50 ms | p99 ms | answered by |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for run, conc in ((cold, 1), (second, args.concurrency), (base_cold, 1),
                      (base_disk, args.concurrency)):
        layers = ", ".join(f"{k} {v}" for k, v in sorted(run.layers.items()))
        lines.append(f"| {run.name} | {len(run.latencies)} | {conc} | {run.rps:.1f} | "
                     f"{run.quantile(0.5):.0f} | {run.quantile(0.99):.0f} | {layers} |")
    p50 = cold.quantile(0.5) - base_cold.quantile(0.5)
    p99 = cold.quantile(0.99) - base_cold.quantile(0.99)
    lines += [
        "",
        f"- transforms on the two store nodes after both passes: **{transforms:.0f}** for "
        f"{len(paths)} distinct renditions (two nodes without the store: {2 * len(paths)}); "
        f"final encodes (refine lane): {refines:.0f} for {refined} WebP/AVIF renditions",
        f"- second pass (store hits) vs one node's warm disk hits: {second.rps:.1f} / "
        f"{base_disk.rps:.1f} req/s = **{second.rps / base_disk.rps:.2f}x**",
        f"- what the store adds to a cold miss: p50 {p50:+.0f} ms, p99 {p99:+.0f} ms "
        f"(cold with the store vs without, end to end: within this machine's noise); the "
        f"store requests themselves, from the nodes' metrics: GET (the miss) "
        f"{store_ms['get']:.1f} ms + lease PUT {store_ms['lease']:.1f} ms on average",
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report)


if __name__ == "__main__":
    main()
