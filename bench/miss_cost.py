"""What one cold miss costs our server: CPU time and page faults per miss, under wrk, A/B.

    python -m bench.miss_cost                                  # m JPEG, 8 connections
    python -m bench.miss_cost --workload "l AVIF" --connections 8,32 --rounds 3
    python -m bench.miss_cost --variant pad=MALLOC_TOP_PAD_=131072 \
        --variant arenas=MALLOC_ARENA_MAX=1

On a shared machine req/s drifts by more than most changes are worth; the CPU time the server's
process tree spent per successful response drifts less, and page faults per response not at
all. Each ``--variant NAME=ENV=VALUE[,ENV=VALUE]`` is our server with that extra environment
(``ours`` is the baseline, always first); variants take turns, round after round, so slow and
quiet minutes fall on all of them alike. Caches are off (every request a full transform), as
in ``bench.compare``'s cold rows, whose layout, rotation and load generator this reuses.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench import participants, server_process
from bench.compare import prepare_layout
from bench.corpus import corpus_dir
from bench.process_memory import tree_processes, tree_rss
from bench.workloads import WORKLOADS, Workload, load_photos, load_rotation, rotation
from bench.wrk_load import run_wrk


@dataclass(frozen=True, slots=True)
class TreeCounters:
    cpu_seconds: float
    page_faults: int

    @classmethod
    def of(cls, pid: int) -> TreeCounters:
        """User + system CPU and minor page faults of ``pid`` and its descendants so far."""
        cpu, faults = 0.0, 0
        for proc in tree_processes(pid):
            try:
                times = proc.cpu_times()
                cpu += times.user + times.system
                faults += _minor_faults(proc.pid)
            except (psutil.NoSuchProcess, psutil.AccessDenied, FileNotFoundError):
                continue
        return cls(cpu, faults)


def _minor_faults(pid: int) -> int:
    """Field 10 of /proc/<pid>/stat (minflt): what psutil does not expose on every version."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[7])


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """``"pad=MALLOC_TOP_PAD_=131072,MALLOC_ARENA_MAX=1"`` -> ("pad", {...})."""
    name, _, assignments = text.partition("=")
    env = dict(item.split("=", 1) for item in assignments.split(",") if item)
    if not name or not env:
        raise argparse.ArgumentTypeError("a variant is NAME=ENV=VALUE[,ENV=VALUE]")
    return name, env


def measure(workload: Workload, variants: dict[str, dict[str, str]], connections: Sequence[int],
            seconds: float, rounds: int, workers: int, corpus: Path) -> list[str]:
    """One markdown row per round, connection count and variant."""
    photos = load_photos(corpus)
    served = rotation(photos, max(2, math.ceil(4 * max(connections) / len(photos))))
    lines = []
    with tempfile.TemporaryDirectory(prefix="imgpro-miss-cost-") as tmp:
        root = Path(tmp)
        prepare_layout(root, served)
        paths, prefixes = load_rotation("ours", served, workload)
        for round_number in range(1, rounds + 1):
            for conns in connections:
                for name, env in variants.items():
                    spec = participants.ours_spec(root / "data", workers=workers, caches=False,
                                                  extra_env=env)
                    with server_process.start(spec, root / "logs") as server:
                        before = TreeCounters.of(server.pid)
                        load = run_wrk(server.url, paths, prefixes=prefixes, connections=conns,
                                       seconds=seconds)
                        after = TreeCounters.of(server.pid)
                        rss = tree_rss(server.pid)
                    ok = max(load.ok, 1)
                    cpu_ms = 1000 * (after.cpu_seconds - before.cpu_seconds) / ok
                    faults = (after.page_faults - before.page_faults) / ok
                    lines.append(
                        f"| {round_number} | {conns} | {name} | {load.ok_per_second:.1f} | "
                        f"{load.p99_ms:.0f} | {cpu_ms:.1f} | {faults:,.0f} | {rss >> 20} |")
                    print(lines[-1], flush=True)
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.miss_cost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    cold = {w.name: w for w in WORKLOADS if w.kind == "cold"}
    parser.add_argument("--workload", choices=sorted(cold), default="m JPEG")
    parser.add_argument("--variant", type=parse_variant, action="append", default=[])
    parser.add_argument("--connections", default="8",
                        type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=psutil.cpu_count() or 1)
    parser.add_argument("--corpus", type=Path, default=None)
    args = parser.parse_args(argv)
    variants = {"ours": {}, **dict(args.variant)}
    print("| round | conns | variant | req/s | p99 ms | CPU ms / miss | page faults / miss "
          "| RSS MB at end |")
    print("| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    measure(cold[args.workload], variants, args.connections, args.seconds, args.rounds,
            args.workers, corpus_dir(args.corpus))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
