"""The ``imgpro`` command: ``serve`` composes the roles; other subcommands are operator tools."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from api.settings import Settings

SERVE_OPTIONS = {
    # flag: (environment variable, type, help)
    "--host": ("IMGPRO_HOST", str, "interface to bind (default 127.0.0.1)"),
    "--port": ("IMGPRO_PORT", int, "port to bind (default 8080; 0 picks a free one)"),
    "--data-dir": ("IMGPRO_DATA_DIR", str, "originals, caches, database (default ./imgpro-data)"),
    "--workers": ("IMGPRO_WORKERS", int, "worker processes (default 1)"),
    "--role": ("IMGPRO_ROLE", str, "all | api | cdn (default all)"),
}


def _serve(args: argparse.Namespace) -> int:
    for flag, (env, _type, _help) in SERVE_OPTIONS.items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value is not None:
            os.environ[env] = str(value)
    # glibc malloc fragments badly under many-threaded image work: cap the arenas and serve
    # big blocks (decode buffers) from mmap, so they go back to the system when freed. Worker
    # processes read these at start; this process applies them with mallopt (api.serving.server).
    from api.serving.server import MALLOC_ENV, run  # imports neither libvips nor prometheus_client
    from api.settings import Settings

    for name, value in MALLOC_ENV.items():
        os.environ.setdefault(name, value)
    settings = Settings()  # read once here; worker processes read the same environment
    _prepare_multiprocess_metrics(settings)
    return run(settings)


def _prepare_multiprocess_metrics(settings: Settings) -> None:
    """With several workers, prometheus-client keeps each one's values in files that
    /metrics sums; the directory must exist, empty, before any worker imports it."""
    if settings.workers < 2 or "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        return
    parent = (settings.data_dir / "metrics").resolve()
    if parent.is_dir():  # leftovers of earlier runs, not of live servers sharing the data dir
        for old in parent.iterdir():
            if not (old.name.isdigit() and _alive(int(old.name))):
                shutil.rmtree(old, ignore_errors=True)
    directory = parent / str(os.getpid())
    directory.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _put(args: argparse.Namespace) -> int:
    """Store a local file as an original under a team hash and print its CDN URL."""
    from api.serving.store_startup import prepare_originals_store
    from api.settings import Settings
    from transformer import TransformError, probe
    from transformer.originals import BucketMissing, StoreUnavailable, open_store

    settings = Settings()
    try:
        data = Path(args.file).read_bytes()
        info = probe(data)
    except OSError as exc:
        print(f"imgpro put: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except TransformError as exc:
        print(f"imgpro put: {args.file}: {exc.message}", file=sys.stderr)
        return 1
    uid = args.uid or os.urandom(6).hex()
    store = open_store(settings.effective_storage_url, s3_endpoint_url=settings.s3_endpoint_url)

    async def put() -> None:
        try:
            await prepare_originals_store(store, settings)  # S3: the bucket exists
            await store.put(args.team, uid, data)
        finally:
            await store.close()

    try:
        asyncio.run(put())
    except (StoreUnavailable, BucketMissing) as exc:
        print(f"imgpro put: {exc}", file=sys.stderr)
        return 1
    print(f"{settings.effective_cdn_url}/{args.team}/{uid}.{info.format}")
    return 0


def build_parser(*, serve_only: bool = False) -> argparse.ArgumentParser:
    """All subcommands, or only ``serve``: the process that runs ``serve`` stays up as the
    workers' supervisor, and the other subcommands' modules would import libvips, numpy,
    SQLAlchemy, httpx and rich into it for nothing (README "Operations" has its RSS)."""
    parser = argparse.ArgumentParser(prog="imgpro", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API and/or CDN origin")
    for flag, (env, typ, help_text) in SERVE_OPTIONS.items():
        serve.add_argument(flag, type=typ, default=None, help=f"{help_text}; env {env}")
    serve.set_defaults(func=_serve)
    if serve_only:
        return parser

    put = sub.add_parser("put", help="store a file as an original and print its CDN URL")
    put.add_argument("file")
    put.add_argument("--team", default="t", help="team hash (default t)")
    put.add_argument("--uid", default=None, help="media id (default: random)")
    put.set_defaults(func=_put)

    from api.commands.accounts import add_accounts_commands

    add_accounts_commands(sub)

    from api.agents import stdio_command  # imgpro mcp: the MCP server over stdio (SDK lazily)
    from api.commands import bulk_upload, key_request  # client commands: upload, keys create

    bulk_upload.add_parser(sub)
    key_request.add_parser(sub)
    stdio_command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(serve_only=argv[:1] == ["serve"]).parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
