"""Peak RSS of a real server receiving many large bodies at once (uploads or imports).

    python bench/intake_memory.py --mode upload --bodies 16 --size-mb 60
    python bench/intake_memory.py --mode import --bodies 12 --size-mb 69 --budget-mb 560

Starts ``imgpro serve`` (one process, SQLite, a fresh data dir), makes a key, sends one small
upload to warm it up, then ``--bodies`` uploads (or imports from a loopback HTTP server) of one
incompressible PNG of ``--size-mb`` MiB, all at once, while a thread samples the server's RSS
(psutil, every 5 ms). Prints the statuses, idle and peak RSS.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import psutil
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024


def noise_png(size: int) -> bytes:
    side = int((size / 3) ** 0.5)
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), random.Random(1).randbytes(side * side * 3)).save(
        out, format="PNG", compress_level=0)
    return out.getvalue()


def serve(data_dir: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    log = (data_dir / "server.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "api", "serve", "--port", "0"], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT),
                                 "IMGPRO_DATA_DIR": str(data_dir), **env},
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"serving on (http://\S+)", (data_dir / "server.log").read_text())
        if found:
            url = found.group(1)
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                        return proc, url
                except httpx.HTTPError:
                    time.sleep(0.1)
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start:\n" + (data_dir / "server.log").read_text())


def source_of(image: bytes) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(image)))
            self.end_headers()
            self.wfile.write(image)

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["upload", "import"], default="upload")
    parser.add_argument("--bodies", type=int, default=16)
    parser.add_argument("--size-mb", type=float, default=60)
    parser.add_argument("--budget-mb", type=int, default=None,
                        help="IMGPRO_BODY_BUDGET_MB (default: the server's own default)")
    args = parser.parse_args()
    image = noise_png(int(args.size_mb * MB))
    env = {"IMGPRO_IMPORT_ALLOW_PRIVATE": "1", "IMGPRO_BODY_BUDGET_WAIT": "600"}
    if args.budget_mb is not None:
        env["IMGPRO_BODY_BUDGET_MB"] = str(args.budget_mb)
    with tempfile.TemporaryDirectory() as folder:
        proc, url = serve(Path(folder), env)
        source = source_of(image) if args.mode == "import" else None
        try:
            key = httpx.post(f"{url}/v1/keys", json={"email": "bench@example.com"},
                             timeout=30).json()["key"]
            auth = {"Authorization": f"Bearer {key}"}
            httpx.post(f"{url}/v1/upload", headers=auth, timeout=60,
                       files={"file": ("warm.png", noise_png(100_000))}).raise_for_status()
            server = psutil.Process(proc.pid)
            idle = peak = server.memory_info().rss
            stop = threading.Event()

            def sample() -> None:
                nonlocal peak
                while not stop.wait(0.005):
                    peak = max(peak, server.memory_info().rss)

            def send(n: int) -> int:
                with httpx.Client(timeout=900, headers=auth) as client:
                    if source is not None:
                        where = f"http://127.0.0.1:{source.server_address[1]}/{n}.png"
                        return client.post(f"{url}/v1/import", json={"url": where}).status_code
                    return client.post(f"{url}/v1/upload",
                                       files={"file": (f"{n}.png", image)}).status_code

            sampler = threading.Thread(target=sample)
            sampler.start()
            started = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(args.bodies) as pool:
                statuses = list(pool.map(send, range(args.bodies)))
            stop.set()
            sampler.join()
            print(f"{args.bodies} x {args.mode} of {len(image) / MB:.0f} MiB: statuses "
                  f"{sorted(set(statuses))} ({statuses.count(201)} x 201) in "
                  f"{time.monotonic() - started:.1f} s; RSS {idle / MB:.0f} -> {peak / MB:.0f} MB "
                  f"(+{(peak - idle) / MB:.0f} MB)")
        finally:
            if source is not None:
                source.shutdown()
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
