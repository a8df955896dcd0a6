"""Side-by-side benchmark, in ONE run: our CDN origin vs the in-process libvips limit, ipx,
thumbor and nginx, on the shared corpus, short-edge targets, quality 80.

    python -m bench.compare            # full run (<= ~20 min on 2 cores), writes the markdown
    python -m bench.compare --quick    # smoke run, a minute or two
    python -m bench.compare --soak 300 --soak-only   # 5 minutes of cold load, RSS growth

Why one run: figures taken on different days on a shared machine cannot be divided by each
other. Every participant gets the same photos in the same rotation, the same geometry (short
edge = target, never enlarged), the same format at q80, from the same load generator (wrk, one
thread, so it leaves the servers most of the 2 cores), and a fresh server per cell. Peers are
installed from their registries into a cache dir outside git; what cannot be installed is
skipped with the command that would install it. See README "## Benchmarks".
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pyvips

import transformer
from bench import participants
from bench.compare_report import (
    IPX,
    LIMIT,
    NGINX,
    OURS,
    THUMBOR,
    Cell,
    SoakResult,
    evaluate_issue11_targets,
    evaluate_targets,
    ratio_table,
    results_table,
    soak_table,
    targets_table,
)
from bench.corpus import corpus_dir, corpus_label
from bench.host import host_line
from bench.inprocess_limit import miss_effort, render
from bench.process_memory import RssSampler
from bench.report_files import command_line, publish
from bench.server_process import ServerFailed, ServerSpec, start
from bench.workloads import (
    PATH_BUILDERS,
    TEAM,
    WORKLOADS,
    Photo,
    Served,
    Workload,
    load_photos,
    load_rotation,
    ours_teams,
    output_size,
    rotation,
)
from bench.wrk_load import LoadResult, WrkMissing, run_wrk, wrk_binary

REPO_ROOT = participants.REPO_ROOT
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "imgpro-bench"
ALL_PARTICIPANTS = ("limit", "ours", "ipx", "thumbor", "nginx")
LABELS = {"limit": LIMIT, "ours": OURS, "ipx": IPX, "thumbor": THUMBOR, "nginx": NGINX}
COLD = [w for w in WORKLOADS if w.kind == "cold"]

HIT = next(w for w in WORKLOADS if w.kind == "hit")


class ParticipantBroken(RuntimeError):
    """A participant answered, but not with the rendition asked for."""


@dataclass
class Run:
    """Everything one invocation measured, plus what the report needs to say about it."""

    args: argparse.Namespace
    photos: list[Photo]
    served: list[Served]
    root: Path
    cells: list[Cell] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    soak: SoakResult | None = None

    @property
    def connections(self) -> list[int]:
        return list(self.args.connections)

    def skip(self, who: str, reason: str) -> None:
        print(f"SKIP {who}: {reason}", flush=True)
        self.skipped[who] = reason


# ---- layout on disk ---------------------------------------------------------------------------


def prepare_layout(root: Path, served: list[Served]) -> None:
    """Originals for ours (``data/originals/<team>/<uid>``), files for ipx/thumbor, nginx's www."""
    originals = root / "data" / "originals" / TEAM
    files = root / "files"
    for folder in (originals, files, root / "www"):
        folder.mkdir(parents=True, exist_ok=True)
    for s in served:
        (originals / s.uid).symlink_to(s.photo.path.resolve())
        (files / s.filename).symlink_to(s.photo.path.resolve())
    for team in ours_teams()[1:]:
        (originals.parent / team).symlink_to(originals, target_is_directory=True)
    root.chmod(0o755)


# ---- one participant, one workload ------------------------------------------------------------


def fetch_all(base_url: str, paths: Sequence[str], workers: int) -> list[bytes]:
    """Each path once (a few at a time); any non-200 or non-image answer breaks the participant."""

    def one(client: httpx.Client, path: str) -> bytes:
        response = client.get(base_url + path)
        kind = response.headers.get("content-type", "")
        if response.status_code != 200 or not kind.startswith("image/"):
            raise ParticipantBroken(
                f"GET {path} -> {response.status_code} {kind}: {response.text[:200]!r}"
            )
        return response.content

    with httpx.Client(timeout=600) as client, ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda p: one(client, p), paths))


def check_renditions(
    run: Run, who: str, workload: Workload, photos: Sequence[Photo], bodies: Sequence[bytes]
) -> None:
    """Warn when a participant's output is not the asked-for geometry and format."""
    loader = {"jpeg": "jpegload", "webp": "webpload", "avif": "heifload", "png": "pngload"}[
        workload.fmt
    ]
    for photo, body in zip(photos, bodies, strict=True):
        image = pyvips.Image.new_from_buffer(body, "")
        want = output_size(photo, workload.target)
        got = (image.width, image.height)
        if (
            abs(got[0] - want[0]) > 1
            or abs(got[1] - want[1]) > 1
            or not image.get("vips-loader").startswith(loader)
        ):
            run.warnings.append(
                f"{who} {workload.name} {photo.stem}: got {got} {image.get('vips-loader')}, "
                f"want {want} {workload.fmt}"
            )


def measure_http(
    run: Run, who: str, workload: Workload, make_spec: Callable[[], ServerSpec]
) -> None:
    """A fresh server per connection count; mean bytes from one fetch of each photo first."""
    build = PATH_BUILDERS[who]
    if workload.kind == "hit":
        paths, prefixes = [build(run.served[0], workload)], [""]
        photos = [run.served[0].photo]
    else:
        paths, prefixes = load_rotation(who, run.served, workload)
        photos = run.photos
    distinct = [build(s, workload) for s in run.served[: len(photos)]]
    label = LABELS[who]
    mean_bytes: float | None = None
    for conns in run.connections:
        print(f"  {workload.name:11} {label:8} c{conns:<3} ", end="", flush=True)
        try:
            with start(make_spec(), run.root / "logs") as server:
                if mean_bytes is None:
                    bodies = fetch_all(server.url, distinct, workers=os.cpu_count() or 2)
                    check_renditions(run, label, workload, photos, bodies)
                    mean_bytes = sum(map(len, bodies)) / len(bodies)
                else:
                    fetch_all(server.url, distinct[:1], workers=1)  # warm-up after the restart
                with RssSampler(server.pid) as rss:
                    load = run_wrk(
                        server.url,
                        paths,
                        prefixes=prefixes,
                        connections=conns,
                        seconds=run.args.duration,
                    )
        except (ServerFailed, ParticipantBroken, RuntimeError, httpx.HTTPError) as exc:
            print("failed")
            run.skip(f"{label} {workload.name}", str(exc).strip()[:600])
            return
        cell = _cell(label, workload, conns, load, rss.peak, mean_bytes)
        run.cells.append(cell)
        print(
            f"{cell.per_second:8.1f} req/s  p50 {cell.p50_ms:6.0f} ms  p99 {cell.p99_ms:6.0f} ms  "
            f"RSS {cell.peak_rss / 2**20:5.0f} MB  failed {cell.failed}",
            flush=True,
        )


def _cell(
    label: str,
    workload: Workload,
    conns: int,
    load: LoadResult,
    peak: int,
    mean_bytes: float | None,
) -> Cell:
    return Cell(
        label,
        workload.name,
        conns,
        load.ok_per_second,
        load.p50_ms,
        load.p99_ms,
        load.ok,
        load.non_2xx + load.socket_errors,
        peak,
        mean_bytes,
    )


def limit_command(args: argparse.Namespace, workload: Workload, photos: int) -> list[str]:
    """``python -m bench.inprocess_limit`` for ``workload``, at the effort our miss uses."""
    cmd = [
        sys.executable,
        "-m",
        "bench.inprocess_limit",
        "--corpus",
        str(args.corpus),
        "--size",
        workload.size,
        "--fmt",
        workload.fmt,
        "--seconds",
        str(args.duration),
        "--threads",
        str(os.cpu_count() or 1),
        "--effort",
        miss_effort(workload.fmt),
    ]
    if args.quick:
        cmd += ["--photos", str(photos)]
    return cmd


def measure_limit(run: Run, workload: Workload) -> None:
    """The in-process limit as a child process (its own RSS, a fresh libvips)."""
    cmd = limit_command(run.args, workload, len(run.photos))
    print(f"  {workload.name:11} {LIMIT:8} {'':4} ", end="", flush=True)
    proc = subprocess.Popen(
        cmd,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with RssSampler(proc.pid) as rss:
        out, err = proc.communicate()
    if proc.returncode != 0:
        print("failed")
        run.skip(f"{LIMIT} {workload.name}", err.strip()[-600:])
        return
    raw = json.loads(out.strip().splitlines()[-1])
    run.versions["encoder settings"] = f"{raw['encoder']['source']}"
    run.versions[f"encoder {workload.fmt}"] = json.dumps(
        {k: v for k, v in raw["encoder"].items() if k != "source"})
    cell = Cell(
        LIMIT,
        workload.name,
        None,
        raw["per_second"],
        raw["p50_ms"],
        raw["p99_ms"],
        raw["renditions"],
        0,
        rss.peak,
        raw["mean_bytes"],
    )
    run.cells.append(cell)
    print(
        f"{cell.per_second:8.1f} renditions/s  p50 {cell.p50_ms:6.0f} ms  "
        f"p99 {cell.p99_ms:6.0f} ms  "
        f"RSS {cell.peak_rss / 2**20:5.0f} MB",
        flush=True,
    )


# ---- participants -----------------------------------------------------------------------------


def ours_spec(run: Run, *, caches: bool) -> ServerSpec:
    return participants.ours_spec(
        run.root / "data", workers=run.args.workers, caches=caches, extra_env=run.args.ours_env
    )


def peer_specs(run: Run) -> dict[str, Callable[[], ServerSpec]]:
    """Spec factories of the HTTP participants that can run here; records why others cannot."""
    specs: dict[str, Callable[[], ServerSpec]] = {}
    wanted = set(run.args.participants)
    files, www = run.root / "files", run.root / "www"
    work = run.root / "work"
    work.mkdir(exist_ok=True)
    if "ours" in wanted:
        specs["ours"] = lambda: ours_spec(run, caches=False)
        specs["ours-hits"] = lambda: ours_spec(run, caches=True)
        extra = " ".join(f"{k}={v}" for k, v in run.args.ours_env.items())
        run.versions["ours"] = (
            f"imgpro `python -m api serve --role cdn`, IMGPRO_WORKERS={run.args.workers}, "
            f"libvips {pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}; "
            "cold: IMGPRO_MEMORY_CACHE_MB=0 IMGPRO_DISK_CACHE_MB=0; hits: default caches; "
            + (f"also {extra}" if extra else "every other setting at its default")
        )
    if "ipx" in wanted:
        try:
            ipx_dir = participants.ensure_ipx(run.args.cache_dir)
            run.versions["ipx"] = participants.PEER_DEFAULTS["ipx"].format(
                **participants.ipx_versions(ipx_dir)
            )
            specs["ipx"] = lambda: participants.ipx_spec(ipx_dir, files)
        except participants.PeerUnavailable as exc:
            run.skip(IPX, str(exc))
    if "thumbor" in wanted:
        try:
            venv = participants.ensure_thumbor(run.args.cache_dir)
            run.versions["thumbor"] = participants.PEER_DEFAULTS["thumbor"].format(
                **participants.thumbor_versions(venv)
            )
            specs["thumbor"] = lambda: participants.thumbor_spec(venv, files, work)
        except participants.PeerUnavailable as exc:
            run.skip(THUMBOR, str(exc))
    if "nginx" in wanted:
        try:
            run.versions["nginx"] = participants.PEER_DEFAULTS["nginx"].format(
                nginx=participants.nginx_version()
            )
            specs["nginx"] = lambda: participants.nginx_spec(www, work)
        except participants.PeerUnavailable as exc:
            run.skip(NGINX, str(exc))
    return specs


def prerender_hit(run: Run) -> None:
    """nginx's file for the hit workload: the same rendition, encoded with our settings."""
    s = run.served[0]
    setting = transformer._encoder_settings.encoder_setting(HIT.fmt)
    body = render(s.photo.path.read_bytes(), s.photo, HIT.target, HIT.fmt, setting)
    (run.root / "www" / PATH_BUILDERS["nginx"](s, HIT).lstrip("/")).write_bytes(body)


def wrk_version(wrk: str) -> str:
    out = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False).stdout
    return out.split(" Copyright")[0].strip()


def describe_load_generator(run: Run) -> bool:
    """Record wrk's version for the report; False (and a skip notice) when wrk is missing."""
    try:
        wrk = wrk_binary()
    except WrkMissing as exc:
        run.skip("all HTTP participants", str(exc))
        return False
    run.versions["load generator"] = (
        f"{wrk_version(wrk)}, "
        f"1 thread (fewer than the {os.cpu_count()} cores, so it does not starve the servers), "
        "Lua rotation over the URLs, fresh server per cell"
    )
    return True


def compare(run: Run, *, with_http: bool) -> None:
    specs = peer_specs(run) if with_http else {}
    if "nginx" in specs:
        prerender_hit(run)
    conns = len(run.connections)
    cold_servers = len({"ours", "ipx", "thumbor"} & specs.keys())
    hit_servers = len({"ours-hits", "nginx"} & specs.keys())
    cells = len(COLD) * (("limit" in run.args.participants) + cold_servers * conns)
    cells += hit_servers * conns
    print(
        f"{cells} cells of {run.args.duration:g} s: about "
        f"{cells * (run.args.duration + 4) / 60:.0f} min plus the slow peers' first fetches",
        flush=True,
    )
    for workload in COLD:
        print(f"{workload.name}:", flush=True)
        if "limit" in run.args.participants:
            measure_limit(run, workload)
        for who in ("ours", "ipx", "thumbor"):
            if who in specs:
                measure_http(run, who, workload, specs[who])
    print(f"{HIT.name}:", flush=True)
    if "ours-hits" in specs:
        measure_http(run, "ours", HIT, specs["ours-hits"])
    if "nginx" in specs:
        measure_http(run, "nginx", HIT, specs["nginx"])


def soak(run: Run, seconds: float) -> None:
    """Our server under cold load (the three cold workloads, 8 connections), RSS every 5 s."""
    print(f"soak: ours, cold, {seconds:.0f} s at 8 connections", flush=True)
    rotations = [load_rotation("ours", run.served, w) for w in COLD]
    # Interleaved: the m WebP, m JPEG and l AVIF of the first name, then of the next, ...
    paths = [path for trio in zip(*(r[0] for r in rotations), strict=True) for path in trio]
    prefixes = rotations[0][1]
    spec = ours_spec(run, caches=False)
    try:
        with start(spec, run.root / "logs") as server:
            fetch_all(server.url, [prefixes[0] + p for p in paths[:3]], workers=1)
            with RssSampler(server.pid, interval=5.0) as rss:
                load = run_wrk(server.url, paths, prefixes=prefixes, connections=8, seconds=seconds)
    except (ServerFailed, ParticipantBroken, RuntimeError, httpx.HTTPError) as exc:
        run.skip("soak", str(exc).strip()[:600])
        return
    run.soak = SoakResult(
        load.seconds, load.ok_per_second, load.non_2xx + load.socket_errors, rss.samples
    )
    early, late = run.soak.windows()
    print(
        f"  {load.ok_per_second:.1f} req/s, RSS {early / 2**20:.0f} MB -> {late / 2**20:.0f} MB "
        f"({run.soak.growth * 100:+.1f} %)",
        flush=True,
    )


# ---- report -----------------------------------------------------------------------------------


def render_report(run: Run, command: str, started: dt.datetime, host_before: str) -> str:
    cold_names = [w.name for w in COLD]
    sections = [
        "# Side-by-side benchmark: imgpro CDN origin vs in-process libvips, ipx, thumbor, nginx",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC"
        + (" (QUICK smoke run: short cells, fewer photos)" if run.args.quick else ""),
        f"- command: `{command}`",
        f"- host at start: {host_before}",
        f"- host at end: {host_line()}",
        f"- corpus: {len(run.photos)} photos from {corpus_label(run.args.corpus)}, served as "
        f"{len(run.served)} names (copies, so that concurrent requests are distinct cold misses; "
        f"our server also sees a new team hash on each pass, of {len(ours_teams())}); "
        f"{run.args.duration:g} s per cell; "
        f"connections {', '.join(map(str, run.connections))}",
        "- req/s counts successful (2xx) responses only; p50/p99 are wrk's over all responses, "
        "so where `failed` > 0 (e.g. our 503 backpressure) they mix in those fast refusals; "
        "peak RSS is the sum over the server's process tree, sampled every 0.25 s; mean bytes "
        "from one fetch of each photo.",
        "",
        "## Participants",
        "",
        *[f"- **{k}**: {v}" for k, v in run.versions.items()],
        "",
        "## Results",
        "",
        results_table(run.cells),
        "",
        "## Ratios",
        "",
        ratio_table(run.cells, [w.name for w in WORKLOADS], run.connections),
        "",
        "## Targets",
        "",
        targets_table(
            evaluate_targets(
                run.cells,
                run.connections,
                hit_workload=HIT.name,
                cold_workloads=cold_names,
                soak=run.soak,
            )
        ),
        "",
        targets_table(
            evaluate_issue11_targets(run.cells, run.connections, hit_workload=HIT.name), issue=11
        ),
    ]
    if run.soak is not None:
        sections += [
            "",
            f"## Soak: ours, cold, {run.soak.seconds:.0f} s, 8 connections, "
            f"{run.soak.per_second:.1f} req/s, {run.soak.failed} failed",
            "",
            soak_table(run.soak),
        ]
    if run.skipped:
        sections += ["", "## Skipped", "", *[f"- {k}: {v}" for k, v in run.skipped.items()]]
    if run.warnings:
        sections += ["", "## Output checks that failed", "", *[f"- {w}" for w in run.warnings]]
    return "\n".join(sections) + "\n"


# ---- command line -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 5 s cells, 8 connections only, 4 photos (a minute or two)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds of load per cell (default 30; 5 with --quick)",
    )
    parser.add_argument(
        "--connections",
        type=lambda s: [int(x) for x in s.split(",")],
        default=None,
        help="comma-separated connection counts (default 8,32; 8 with --quick)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="IMGPRO_WORKERS for our server (default: one per core, as README recommends)",
    )
    parser.add_argument(
        "--participants",
        type=lambda s: s.split(","),
        default=list(ALL_PARTICIPANTS),
        help=f"comma-separated subset of {','.join(ALL_PARTICIPANTS)}",
    )
    parser.add_argument(
        "--ours-env",
        action="append",
        default=[],
        metavar="IMGPRO_X=VALUE",
        help="extra environment for our server, e.g. IMGPRO_ACCESS_LOG=false (repeatable)",
    )
    parser.add_argument("--corpus", type=Path, default=None,
                        help="photos + MANIFEST.tsv (default: IMGPRO_CORPUS, ../shared/corpus)")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE,
        help=f"where peers are installed (default {DEFAULT_CACHE})",
    )
    parser.add_argument(
        "--soak",
        type=float,
        default=0,
        metavar="SECONDS",
        help="also run our server under cold load this long and report RSS growth",
    )
    parser.add_argument("--soak-only", action="store_true", help="run only the soak")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "compare.md")
    parser.add_argument(
        "--docs-copy",
        type=Path,
        default=None,
        help="also write the markdown here (default docs/bench-compare.md for a full run)",
    )
    args = parser.parse_args(argv)
    args.duration = args.duration or (5.0 if args.quick else 30.0)
    if any("=" not in item for item in args.ours_env):
        parser.error("--ours-env takes NAME=VALUE")
    args.ours_env = dict(item.split("=", 1) for item in args.ours_env)
    args.connections = args.connections or ([8] if args.quick else [8, 32])
    unknown = set(args.participants) - set(ALL_PARTICIPANTS)
    if unknown:
        parser.error(f"unknown participants: {', '.join(sorted(unknown))}")
    complete = set(args.participants) == set(ALL_PARTICIPANTS) and args.connections == [8, 32]
    if args.docs_copy is None and complete and not args.quick and not args.soak_only:
        # Only a complete run replaces the committed copy that README quotes.
        args.docs_copy = REPO_ROOT / "docs" / "bench-compare.md"
    if args.soak_only and not args.soak:
        parser.error("--soak-only needs --soak SECONDS")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    host_before = host_line()
    args.corpus = corpus_dir(args.corpus)
    photos = load_photos(args.corpus)
    if args.quick:
        photos = photos[::3]
    # Enough names that the requests in flight at once are distinct (see bench.workloads).
    copies = max(2, math.ceil(4 * max(args.connections) / len(photos)))
    with tempfile.TemporaryDirectory(prefix="imgpro-bench-") as tmp:
        run = Run(args, photos, rotation(photos, copies), Path(tmp))
        prepare_layout(run.root, run.served)
        with_http = describe_load_generator(run)
        if not args.soak_only:
            compare(run, with_http=with_http)
        if args.soak and with_http:
            soak(run, args.soak)
        report = render_report(run, command_line("bench.compare", argv), started, host_before)
    publish(report, (args.out, args.docs_copy))
    return 0


if __name__ == "__main__":
    sys.exit(main())
