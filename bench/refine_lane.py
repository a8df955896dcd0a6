"""The refine lane under load and idle, in ONE run (issue 11, section 3 and its targets):

    python -m bench.refine_lane          # full run, ~8 min on 2 cores; writes docs/bench-refine.md
    python -m bench.refine_lane --quick  # smoke run, about a minute

(a) Cold-miss throughput under sustained load with the lane on vs off. wrk drives distinct m WebP
    URLs (every request a miss: a new team hash each pass over the names, as bench.compare's cold
    cells) at our server with its memory and disk caches ON, so each miss is provisional and
    offered to the lane, which has work all the time. One fresh server (and empty caches) per
    cell, cells in the order off, on, on, off by default, so a drift of the shared machine's load
    over the run weighs on both modes alike. Target: on >= 0.9x off req/s.
(b) Drain: on an idle fresh server (lane on), 100 distinct m WebP misses are answered provisional
    (8 at a time), then ``/metrics`` is polled until the lane has refined all of them
    (``imgpro_refine_total{result="refined"}``, summed over the workers); then every URL is
    fetched once more and must answer ``X-Rendition: final``. Polling uses ``/metrics`` rather
    than the URLs: a GET that reaches the other worker while the disk still holds the provisional
    entry would offer it to that worker's lane too and double the work being measured.
    Target: all final within 2 minutes, counted from the first of the 100 requests.

Our server runs as bench.compare runs it (``--role cdn``, one worker per core); the lane's encodes
run in one child per worker at SCHED_IDLE, so (b) measures the CPU the machine leaves idle: the
load average at start and end is in the report. See README "Provisional and final renditions".
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench import participants
from bench.compare_report import markdown_table
from bench.corpus import corpus_dir, corpus_label
from bench.host import host_line
from bench.process_memory import RssSampler
from bench.report_files import command_line, publish
from bench.server_process import RunningServer, ServerSpec, start
from bench.workloads import (
    TEAM,
    Photo,
    Served,
    Workload,
    load_photos,
    load_rotation,
    ours_path,
    ours_teams,
    rotation,
)
from bench.wrk_load import run_wrk
from transformer.origin.metrics import FLUSH_SECONDS

REPO_ROOT = participants.REPO_ROOT
METRICS_TOKEN = "bench-refine-lane-metrics-token"
WARMUP_TEAM = "warmup"
"""A team hash outside the wrk rotation: the warm-up request must not turn a measured URL into a
hit."""
THROUGHPUT_TARGET = 0.9
DRAIN_TARGET_SECONDS = 120.0


@dataclass(frozen=True, slots=True)
class LoadCell:
    """One fresh server under wrk, the lane on or off."""

    refine: str
    per_second: float
    p50_ms: float
    p99_ms: float
    ok: int
    failed: int
    peak_rss: int
    hits: float
    """Memory + disk cache hits the server counted during the cell (0: every request a miss)."""
    refined: float
    """Final encodes the lane swapped in during the cell."""
    dropped: float
    """Keys dropped from the lane's full queue during the cell."""
    queued: float
    """Keys in the lane's queue when the load stopped."""


@dataclass(frozen=True, slots=True)
class Drain:
    count: int
    provisional: int
    """Answers of the first pass that were ``X-Rendition: provisional`` and ``X-Cache: miss``."""
    make_seconds: float
    """From the first request to the last provisional answer."""
    drained: bool
    drain_seconds: float
    """From the first request to the moment ``/metrics`` showed every one refined (or the
    timeout)."""
    after_backlog_seconds: float
    """The same, counted from the last provisional answer (the backlog complete)."""
    refined: float
    failed: float
    dropped: float
    final: int
    """Second-pass answers with ``X-Rendition: final``."""
    provisional_bytes: float
    final_bytes: float
    refine_seconds_mean: float
    """Mean wall time of one final encode in the lane (``imgpro_refine_seconds``)."""


@dataclass
class Report:
    args: argparse.Namespace
    cells: list[LoadCell] = field(default_factory=list)
    drain: Drain | None = None


# ---- metrics ----------------------------------------------------------------------------------


def scrape(server: RunningServer) -> dict[str, float]:
    """``/metrics`` as ``{'name{labels}': value}`` (labels as printed), summed over workers."""
    answer = httpx.get(server.url + "/metrics", timeout=30,
                       headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    answer.raise_for_status()
    values: dict[str, float] = {}
    for line in answer.text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = values.get(name, 0.0) + float(value)
    return values


def figure(values: dict[str, float], name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    total = 0.0
    for key, value in values.items():
        base, _, rest = key.partition("{")
        if base == name and all(w in rest for w in wanted):
            total += value
    return total


def settled_scrape(server: RunningServer) -> dict[str, float]:
    """A scrape once every worker has handed its summed hot-path counts to prometheus-client
    (``metrics.FLUSH_SECONDS``; the worker that answers the scrape flushes its own at once)."""
    if server.spec.ready_workers > 1:
        time.sleep(FLUSH_SECONDS + 0.2)
    return scrape(server)


def _grew(before: dict[str, float], after: dict[str, float], name: str, **labels: str) -> float:
    return figure(after, name, **labels) - figure(before, name, **labels)


def _hits(values: dict[str, float]) -> float:
    return sum(figure(values, "imgpro_cache_requests_total", layer=layer, result="hit")
               for layer in ("memory", "disk"))


# ---- servers ----------------------------------------------------------------------------------


def prepare_originals(root: Path, served: list[Served]) -> Path:
    """``root/originals/<team>/<uid>`` for every served name, every team a link to the first."""
    originals = root / "originals"
    first = originals / TEAM
    first.mkdir(parents=True)
    for s in served:
        (first / s.uid).symlink_to(s.photo.path.resolve())
    for team in [*ours_teams()[1:], WARMUP_TEAM]:
        (originals / team).symlink_to(first, target_is_directory=True)
    return originals


def ours_spec(root: Path, originals: Path, cell: int, *, refine: str, workers: int) -> ServerSpec:
    """Our server with its default caches, in a data dir (and disk cache) of its own."""
    spec = participants.ours_spec(
        root / f"data-{cell}", workers=workers, caches=True,
        extra_env={"IMGPRO_REFINE": refine, "IMGPRO_STORAGE_URL": f"file://{originals}",
                   "IMGPRO_METRICS_TOKEN": METRICS_TOKEN, "IMGPRO_ACCESS_LOG": "false"})
    spec.name = f"ours-refine-{refine}-{cell}"
    return spec


def get(client: httpx.Client, url: str) -> httpx.Response:
    answer = client.get(url)
    if answer.status_code != 200 or not answer.headers.get("content-type", "").startswith(
            "image/"):
        raise RuntimeError(f"GET {url} -> {answer.status_code}: {answer.text[:200]!r}")
    return answer


# ---- (a) throughput ---------------------------------------------------------------------------


def measure_load(report: Report, root: Path, originals: Path, served: list[Served],
                 workload: Workload) -> None:
    args = report.args
    paths, prefixes = load_rotation("ours", served, workload)
    warmup = f"/{WARMUP_TEAM}" + paths[0]
    for number, refine in enumerate(args.order):
        print(f"  refine {refine:3} c{args.connections:<3} ", end="", flush=True)
        spec = ours_spec(root, originals, number, refine=refine, workers=args.workers)
        with start(spec, root / "logs") as server:
            with httpx.Client(timeout=120) as client:
                get(client, server.url + warmup)
            before = settled_scrape(server)
            with RssSampler(server.pid) as rss:
                load = run_wrk(server.url, paths, prefixes=prefixes,
                               connections=args.connections, seconds=args.duration)
            after = settled_scrape(server)
        cell = LoadCell(
            refine, load.ok_per_second, load.p50_ms, load.p99_ms, load.ok,
            load.non_2xx + load.socket_errors, rss.peak, _hits(after) - _hits(before),
            _grew(before, after, "imgpro_refine_total", result="refined"),
            _grew(before, after, "imgpro_refine_dropped_total"),
            figure(after, "imgpro_refine_queue_depth"))
        report.cells.append(cell)
        print(f"{cell.per_second:7.1f} req/s  p50 {cell.p50_ms:5.0f} ms  p99 {cell.p99_ms:5.0f} ms"
              f"  failed {cell.failed}  hits {cell.hits:.0f}  refined {cell.refined:.0f}"
              f"  dropped {cell.dropped:.0f}  RSS {cell.peak_rss / 2**20:.0f} MB", flush=True)


def mean_rate(cells: Sequence[LoadCell], refine: str) -> float | None:
    """Pooled req/s of one mode: every cell of it weighs the same (equal durations)."""
    rates = [c.per_second for c in cells if c.refine == refine]
    return statistics.fmean(rates) if rates else None


def throughput_ratio(cells: Sequence[LoadCell]) -> float | None:
    on, off = mean_rate(cells, "on"), mean_rate(cells, "off")
    return on / off if on is not None and off else None


# ---- (b) drain --------------------------------------------------------------------------------


def measure_drain(report: Report, root: Path, originals: Path, served: list[Served],
                  workload: Workload) -> None:
    args = report.args
    urls = [ours_path(s, workload) for s in served[: args.drain_count]]
    spec = ours_spec(root, originals, len(args.order), refine="on", workers=args.workers)
    print(f"  drain of {len(urls)} provisional {workload.name} ", end="", flush=True)
    with start(spec, root / "logs") as server, httpx.Client(timeout=120) as client:
        time.sleep(args.settle)  # start-up work (imports, the first /healthz) out of the way
        started = time.monotonic()
        with ThreadPoolExecutor(args.drain_connections) as pool:
            first = list(pool.map(lambda u: get(client, server.url + u), urls))
        made = time.monotonic()
        values = scrape(server)
        while figure(values, "imgpro_refine_total", result="refined") < len(urls):
            if time.monotonic() - started > args.drain_timeout:
                break
            time.sleep(args.poll)
            values = scrape(server)
        done = time.monotonic()
        refined = figure(values, "imgpro_refine_total", result="refined")
        second = [get(client, server.url + u) for u in urls]
    count = figure(values, "imgpro_refine_seconds_count")
    report.drain = Drain(
        count=len(urls),
        provisional=sum(a.headers.get("x-rendition") == "provisional"
                        and a.headers.get("x-cache") == "miss" for a in first),
        make_seconds=made - started,
        drained=refined >= len(urls),
        drain_seconds=done - started,
        after_backlog_seconds=done - made,
        refined=refined,
        failed=figure(values, "imgpro_refine_total", result="failed"),
        dropped=figure(values, "imgpro_refine_dropped_total"),
        final=sum(a.headers.get("x-rendition") == "final" for a in second),
        provisional_bytes=statistics.fmean(len(a.content) for a in first),
        final_bytes=statistics.fmean(len(a.content) for a in second),
        refine_seconds_mean=figure(values, "imgpro_refine_seconds_sum") / count if count else 0.0,
    )
    d = report.drain
    print(f"made in {d.make_seconds:.1f} s, {'all final' if d.drained else 'NOT all final'} "
          f"after {d.drain_seconds:.1f} s ({d.refined:.0f} refined, {d.final} final by GET)",
          flush=True)


# ---- report -----------------------------------------------------------------------------------


def targets(report: Report) -> list[list[str]]:
    rows = []
    ratio = throughput_ratio(report.cells)
    name = f"cold-miss throughput, refine on >= {THROUGHPUT_TARGET}x refine off"
    if ratio is None:
        rows.append([name, "n/a", "both modes are needed (--order)"])
    else:
        on, off = mean_rate(report.cells, "on"), mean_rate(report.cells, "off")
        rows.append([name, "PASS" if ratio >= THROUGHPUT_TARGET else "FAIL",
                     f"{ratio:.2f}x ({on:.1f} vs {off:.1f} req/s, mean of "
                     f"{sum(c.refine == 'on' for c in report.cells)} cells each)"])
    d = report.drain
    name = (f"idle server: {report.args.drain_count} provisional {report.args.size} WebP "
            f"all final within {DRAIN_TARGET_SECONDS:.0f} s")
    if d is None:
        rows.append([name, "n/a", "not run"])
    else:
        ok = d.drained and d.final == d.count and d.drain_seconds <= DRAIN_TARGET_SECONDS
        rows.append([name, "PASS" if ok else "FAIL",
                     f"{d.drain_seconds:.1f} s from the first request "
                     f"({d.after_backlog_seconds:.1f} s after the backlog was complete); "
                     f"{d.final}/{d.count} final by GET"])
    return rows


def render_report(report: Report, command: str, started: dt.datetime, host_before: str,
                  photos: list[Photo]) -> str:
    args = report.args
    lines = [
        "# Refine lane benchmark: cold misses with the lane on vs off, and an idle drain",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC" + (" (QUICK smoke run)" if args.quick else ""),
        f"- command: `{command}`",
        f"- host at start: {host_before}",
        f"- host at end: {host_line()}",
        f"- corpus: {len(photos)} photos from {corpus_label(args.corpus)}; our server "
        f"`--role cdn`, IMGPRO_WORKERS={args.workers}, default memory and disk caches (empty: a "
        "fresh data dir per server), every other setting at its default but IMGPRO_REFINE",
        f"- load: wrk, 1 thread, {args.connections} connections, {args.duration:g} s per cell, "
        f"distinct {args.size} WebP URLs (a new team hash on each pass over the names), cells "
        f"in the order {', '.join(args.order)}, a fresh server each; req/s counts 2xx answers",
        "",
        "## (a) Cold misses under sustained load",
        "",
        markdown_table(
            ["cell", "IMGPRO_REFINE", "req/s", "p50 ms", "p99 ms", "ok", "failed",
             "peak RSS MB", "cache hits", "refined during load", "dropped", "queued at end"],
            [[str(i + 1), c.refine, f"{c.per_second:.1f}", f"{c.p50_ms:.0f}", f"{c.p99_ms:.0f}",
              str(c.ok), str(c.failed), f"{c.peak_rss / 2**20:.0f}", f"{c.hits:.0f}",
              f"{c.refined:.0f}", f"{c.dropped:.0f}", f"{c.queued:.0f}"]
             for i, c in enumerate(report.cells)]),
    ]
    d = report.drain
    if d is not None:
        lines += [
            "",
            f"## (b) Drain of {d.count} provisional {args.size} WebP renditions on an idle server",
            "",
            f"Made with {args.drain_connections} concurrent GETs after {args.settle:g} s idle; "
            f"`/metrics` polled every {args.poll:g} s; then each URL fetched once more.",
            "",
            markdown_table(
                ["renditions", "answered provisional (miss)", "backlog made in s",
                 "all final after s (from first request)", "after the backlog s", "refined",
                 "failed", "dropped", "final by GET", "mean encode in lane s",
                 "mean bytes provisional", "mean bytes final", "final/provisional"],
                [[str(d.count), str(d.provisional), f"{d.make_seconds:.1f}",
                  f"{d.drain_seconds:.1f}" + ("" if d.drained else " (timed out)"),
                  f"{d.after_backlog_seconds:.1f}", f"{d.refined:.0f}", f"{d.failed:.0f}",
                  f"{d.dropped:.0f}", f"{d.final}/{d.count}", f"{d.refine_seconds_mean:.2f}",
                  f"{d.provisional_bytes:,.0f}", f"{d.final_bytes:,.0f}",
                  f"{d.final_bytes / d.provisional_bytes:.3f}x" if d.provisional_bytes else "-"]]),
        ]
    lines += ["", "## Targets (issue 11)", "",
              markdown_table(["target", "result", "measured"], targets(report))]
    return "\n".join(lines) + "\n"


# ---- command line -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.refine_lane", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 8 s cells, order off,on, a drain of 20, 4 photos")
    parser.add_argument("--duration", type=float, default=None,
                        help="seconds of wrk per cell (default 45; 8 with --quick)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--order", type=lambda s: s.split(","), default=None,
                        help="IMGPRO_REFINE of each load cell (default off,on,on,off)")
    parser.add_argument("--size", choices=("s", "m", "l"), default="m")
    parser.add_argument("--drain-count", type=int, default=None,
                        help="provisional renditions to drain (default 100; 20 with --quick; "
                        "0 skips the drain)")
    parser.add_argument("--drain-connections", type=int, default=8)
    parser.add_argument("--drain-timeout", type=float, default=600)
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between scrapes")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds the drain's server idles before the backlog is made")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--photos", type=int, default=0, help="first N photos only (0: all)")
    parser.add_argument("--corpus", type=Path, default=None,
                        help="photos + MANIFEST.tsv (default: IMGPRO_CORPUS, ../shared/corpus)")
    parser.add_argument("--out", type=Path,
                        default=REPO_ROOT / "bench" / "results" / "refine_lane.md")
    parser.add_argument("--docs-copy", type=Path, default=None,
                        help="also write the markdown here (default docs/bench-refine.md for a "
                        "run with the default cells)")
    args = parser.parse_args(argv)
    defaults = args.duration is None and args.order is None and args.drain_count is None
    args.duration = args.duration or (8.0 if args.quick else 45.0)
    args.order = args.order or (["off", "on"] if args.quick else ["off", "on", "on", "off"])
    if set(args.order) - {"on", "off"}:
        parser.error("--order takes on/off values")
    if args.drain_count is None:
        args.drain_count = 20 if args.quick else 100
    if args.photos == 0 and args.quick:
        args.photos = 4
    if args.docs_copy is None and defaults and not args.quick and args.photos == 0:
        args.docs_copy = REPO_ROOT / "docs" / "bench-refine.md"
    return args


def run(args: argparse.Namespace, root: Path) -> tuple[Report, list[Photo]]:
    """Both measurements; ``root`` holds the originals' links, data dirs and server logs."""
    args.corpus = corpus_dir(args.corpus)
    photos = load_photos(args.corpus)
    if args.photos:
        photos = photos[: args.photos]
    workload = Workload(f"{args.size} WebP", args.size, "webp", "cold")
    # Enough names that requests in flight are distinct keys, and that the drain has its own.
    copies = max(2, math.ceil(4 * args.connections / len(photos)),
                 math.ceil(args.drain_count / len(photos)))
    served = rotation(photos, copies)
    originals = prepare_originals(root, served)
    report = Report(args)
    if args.order:
        print(f"(a) cold {workload.name} under load, {len(args.order)} cells of "
              f"{args.duration:g} s:", flush=True)
        measure_load(report, root, originals, served, workload)
    if args.drain_count:
        print("(b) idle drain:", flush=True)
        measure_drain(report, root, originals, served, workload)
    return report, photos


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    host_before = host_line()
    with tempfile.TemporaryDirectory(prefix="imgpro-refine-") as tmp:
        report, photos = run(args, Path(tmp))
    text = render_report(report, command_line("bench.refine_lane", argv), started, host_before,
                         photos)
    publish(text, (args.out, args.docs_copy))
    return 0


if __name__ == "__main__":
    sys.exit(main())
