"""The servers under comparison: ours, ipx, thumbor and nginx, with how each is installed and run.

Peers are installed from their registries into a cache directory outside git (npm for ipx,
a venv of its own for thumbor, which pins its own Pillow); nginx is the Debian package. A
peer that cannot be had is reported with the command that would install it, never a crash.

Each peer runs with its defaults except where the comparison needs the same work (quality 80,
the short-edge geometry, no result cache for cold runs); ``PEER_DEFAULTS`` says what those
defaults are, and the report prints it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench.server_process import ServerSpec, free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
IPX_VERSION = "3"
IPX_SERVER_SCRIPT = Path(__file__).with_name("ipx_server.mjs")

PEER_DEFAULTS = {
    "ipx": (
        "ipx {ipx} on sharp {sharp} / libvips {vips} (prebuilt, mozjpeg inside), one Node process, "
        "libuv pool 4 threads, sharp.concurrency()={concurrency} (one libvips thread per image on "
        "glibc without jemalloc), glibc malloc as shipped. Defaults used: JPEG q80 progressive "
        "(ipx sets jpegProgressive), 4:2:0, optimize_coding, no trellis/mozjpeg preset; WebP q80 "
        "effort 4; AVIF q80 effort 4; metadata stripped. No result cache in ipx itself."
    ),
    "thumbor": (
        "thumbor {thumbor} on Pillow {pillow} (PIL engine), `--processes 0` (one per core), "
        "file loader, STORAGE no_storage, RESULT_STORAGE off. Defaults used: QUALITY 80, JPEG "
        "progressive + optimize (libjpeg-turbo), WebP method 4, AVIF via Pillow's libavif at its "
        "default speed 6, RESPECT_ORIENTATION False, EXIF dropped."
    ),
    "nginx": "nginx {nginx}, worker_processes auto, sendfile on, no access log, pre-rendered file.",
}


class PeerUnavailable(RuntimeError):
    """A participant cannot run here; the message says what to install."""


def _run(cmd: list[str], cwd: Path | None = None, timeout: float = 900) -> str:
    done = subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise PeerUnavailable(
            f"`{' '.join(cmd)}` failed: {(done.stderr or done.stdout).strip()[-800:]}"
        )
    return done.stdout.strip()


# ---- ours -------------------------------------------------------------------------------------


def ours_spec(
    data_dir: Path, *, workers: int, caches: bool, extra_env: dict[str, str] | None = None
) -> ServerSpec:
    """``python -m api serve --role cdn``; caches off means every request is a full transform.

    ``extra_env`` (``--ours-env``) tries a setting without editing code; the report lists it.
    """
    env = {
        "PYTHONPATH": str(REPO_ROOT),
        "IMGPRO_DATA_DIR": str(data_dir),
        "IMGPRO_HOST": "127.0.0.1",
        "IMGPRO_WORKERS": str(workers),
    }
    if not caches:
        env |= {"IMGPRO_MEMORY_CACHE_MB": "0", "IMGPRO_DISK_CACHE_MB": "0"}
    env |= extra_env or {}
    return ServerSpec(
        name=f"ours-{'hits' if caches else 'cold'}-w{workers}",
        cmd=[sys.executable, "-m", "api", "serve", "--role", "cdn", "--port", "0"],
        cwd=REPO_ROOT,
        env=env,
        ready_path="/healthz",
        ready_workers=workers,
    )


# ---- ipx --------------------------------------------------------------------------------------


def ensure_ipx(cache_dir: Path) -> Path:
    """``npm install ipx`` into ``cache_dir/ipx`` once; returns that folder."""
    if not shutil.which("node") or not shutil.which("npm"):
        raise PeerUnavailable(
            "ipx skipped: node and npm not found (Debian: `apt-get install -y nodejs npm`)"
        )
    folder = cache_dir / "ipx"
    if not (folder / "node_modules" / "ipx" / "package.json").exists():
        folder.mkdir(parents=True, exist_ok=True)
        print(f"installing ipx@{IPX_VERSION} into {folder} ...", flush=True)
        _run(
            [
                "npm",
                "install",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(folder),
                f"ipx@{IPX_VERSION}",
            ]
        )
    shutil.copy(IPX_SERVER_SCRIPT, folder / IPX_SERVER_SCRIPT.name)
    return folder


def ipx_spec(ipx_dir: Path, files_dir: Path) -> ServerSpec:
    return ServerSpec(
        "ipx",
        ["node", IPX_SERVER_SCRIPT.name, str(files_dir)],
        cwd=ipx_dir,
        ready_path="/_/missing.jpg",
    )


def ipx_versions(ipx_dir: Path) -> dict[str, str]:
    script = (
        "const s=require('sharp');const fs=require('fs');"
        "const p=JSON.parse(fs.readFileSync('node_modules/ipx/package.json','utf8'));"
        "console.log(JSON.stringify({ipx:p.version,sharp:s.versions.sharp,"
        "vips:s.versions.vips,concurrency:s.concurrency()}))"
    )
    return json.loads(_run(["node", "-e", script], cwd=ipx_dir))


# ---- thumbor ----------------------------------------------------------------------------------

_THUMBOR_CONF = """\
# Generated by bench/compare.py: thumbor's defaults except what the comparison needs.
LOADER = "thumbor.loaders.file_loader"
FILE_LOADER_ROOT_PATH = {root!r}
STORAGE = "thumbor.storages.no_storage"
RESULT_STORAGE = None
ALLOW_UNSAFE_URL = True
QUALITY = 80
"""


def ensure_thumbor(cache_dir: Path) -> Path:
    """``pip install thumbor`` into its own venv (it pins its own Pillow); returns the venv."""
    venv = cache_dir / "thumbor-venv"
    if not (venv / "bin" / "thumbor").exists():
        print(f"installing thumbor into {venv} ...", flush=True)
        base = getattr(sys, "_base_executable", sys.executable)
        _run([base, "-m", "venv", str(venv)])
        _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "thumbor"])
    return venv


def thumbor_spec(venv: Path, files_dir: Path, work_dir: Path) -> ServerSpec:
    conf = work_dir / "thumbor.conf"
    conf.write_text(_THUMBOR_CONF.format(root=str(files_dir)))
    port = free_port()
    return ServerSpec(
        "thumbor",
        [
            str(venv / "bin" / "thumbor"),
            "--ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--conf",
            str(conf),
            "--processes",
            "0",
            "--log-level",
            "warning",
        ],
        cwd=work_dir,
        url=f"http://127.0.0.1:{port}",
        ready_path="/healthcheck",
    )


def thumbor_versions(venv: Path) -> dict[str, str]:
    script = (
        "import json, importlib.metadata as m; "
        "print(json.dumps({'thumbor': m.version('thumbor'), 'pillow': m.version('pillow')}))"
    )
    return json.loads(_run([str(venv / "bin" / "python"), "-c", script]))


# ---- nginx ------------------------------------------------------------------------------------

_NGINX_CONF = """\
# Generated by bench/compare.py: static files, the limit for cache hits.
daemon off;
worker_processes auto;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    types {{ image/jpeg jpg jpeg; image/webp webp; image/avif avif; image/png png; }}
    client_body_temp_path {work}/tmp;
    proxy_temp_path {work}/tmp;
    fastcgi_temp_path {work}/tmp;
    uwsgi_temp_path {work}/tmp;
    scgi_temp_path {work}/tmp;
    server {{
        listen 127.0.0.1:{port};
        root {www};
        location / {{ }}
    }}
}}
"""


def nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if not found:
        raise PeerUnavailable("nginx skipped: not installed (Debian: `apt-get install -y nginx`)")
    return found


def nginx_spec(www_dir: Path, work_dir: Path) -> ServerSpec:
    binary = nginx_binary()
    port = free_port()
    (work_dir / "tmp").mkdir(parents=True, exist_ok=True)
    conf = work_dir / "nginx.conf"
    conf.write_text(_NGINX_CONF.format(work=work_dir, port=port, www=www_dir))
    # Workers may drop to user nobody: the served tree must be world-readable.
    for folder in (work_dir, www_dir):
        folder.chmod(0o755)
    return ServerSpec(
        "nginx",
        [binary, "-c", str(conf), "-p", str(work_dir), "-e", "stderr"],
        cwd=work_dir,
        url=f"http://127.0.0.1:{port}",
        ready_path="/",
    )


def nginx_version() -> str:
    done = subprocess.run([nginx_binary(), "-v"], capture_output=True, text=True, check=False)
    return (done.stderr or done.stdout).strip().rsplit("/", 1)[-1]
