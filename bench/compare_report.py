"""Measured cells -> the comparison tables, the ratios and the pass/fail of issue 2's targets
(and of issue 11's, which raise some of them now that misses are fast provisional encodes).

Pure functions over plain records, so the rules (which figure is compared with which, when a
target holds) can be tested without running any server. The same markdown is printed to the
terminal and written to the results file.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

OURS, IPX, THUMBOR, LIMIT, NGINX = "ours", "ipx", "thumbor", "in-process limit", "nginx"


@dataclass(frozen=True, slots=True)
class Cell:
    """One measured (participant, workload, connections) combination."""

    participant: str
    workload: str
    connections: int | None
    """None for the in-process limit, which has threads, not connections."""
    per_second: float
    """Successful responses (renditions) per second."""
    p50_ms: float
    p99_ms: float
    completed: int
    failed: int
    """Responses >= 400 plus socket errors (e.g. our 503 backpressure)."""
    peak_rss: int
    mean_bytes: float | None


@dataclass(frozen=True, slots=True)
class TargetResult:
    name: str
    status: str
    """PASS, FAIL or n/a (a participant needed for it was not measured)."""
    detail: str


@dataclass
class SoakResult:
    seconds: float
    per_second: float
    failed: int
    samples: list[tuple[float, int]] = field(default_factory=list)

    def windows(self) -> tuple[float, float]:
        """Median RSS of the second fifth of the run (after warm-up) and of the last fifth."""
        span = self.samples[-1][0] if self.samples else 0.0
        early = [r for t, r in self.samples if span * 0.2 <= t < span * 0.4]
        late = [r for t, r in self.samples if t >= span * 0.8]
        if not early or not late:
            return 0.0, 0.0
        return statistics.median(early), statistics.median(late)

    @property
    def growth(self) -> float:
        """Late over early median RSS, minus 1 (0.03 = 3 % growth)."""
        early, late = self.windows()
        return late / early - 1 if early else 0.0


SOAK_GROWTH_LIMIT = 0.05
"""Growth up to 5 % between the early and late windows counts as "no growth" (noise, lazily
grown pools); a leak shows as steady growth well past that over five minutes."""


def find(
    cells: Iterable[Cell], participant: str, workload: str, connections: int | None
) -> Cell | None:
    for cell in cells:
        if (cell.participant, cell.workload, cell.connections) == (
            participant,
            workload,
            connections,
        ):
            return cell
    return None


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def cell_ratio(a: Cell | None, b: Cell | None, figure: str = "per_second") -> float | None:
    """``a.figure / b.figure``, or None when either cell or figure is missing (or b's is 0)."""
    if a is None or b is None:
        return None
    return _ratio(getattr(a, figure), getattr(b, figure))


def _fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _mb(value: int) -> str:
    return f"{value / 2**20:.0f}" if value else "-"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def results_table(cells: Sequence[Cell]) -> str:
    rows = []
    for c in cells:
        rows.append(
            [
                c.workload,
                c.participant,
                "-" if c.connections is None else str(c.connections),
                f"{c.per_second:.1f}",
                *((f"{c.p50_ms:.0f}", f"{c.p99_ms:.0f}") if c.completed else ("-", "-")),
                str(c.completed),
                str(c.failed),
                _mb(c.peak_rss),
                "-" if c.mean_bytes is None else f"{c.mean_bytes:,.0f}",
            ]
        )
    return markdown_table(
        [
            "workload",
            "participant",
            "conns",
            "req/s",
            "p50 ms",
            "p99 ms",
            "ok",
            "failed",
            "peak RSS MB",
            "mean bytes",
        ],
        rows,
    )


def ratio_table(cells: Sequence[Cell], workloads: Sequence[str], connections: Sequence[int]) -> str:
    """Ours over each reference, per workload and connection count (req/s; bytes, RSS vs ipx)."""
    rows = []
    for workload in workloads:
        limit = find(cells, LIMIT, workload, None)
        for conns in connections:
            ours = find(cells, OURS, workload, conns)
            if ours is None:
                continue
            ipx = find(cells, IPX, workload, conns)
            thumbor = find(cells, THUMBOR, workload, conns)
            nginx = find(cells, NGINX, workload, conns)
            rows.append(
                [
                    workload,
                    str(conns),
                    _fmt_ratio(cell_ratio(ours, ipx, "per_second")),
                    _fmt_ratio(cell_ratio(ours, thumbor, "per_second")),
                    _fmt_ratio(cell_ratio(ours, limit, "per_second")),
                    _fmt_ratio(cell_ratio(ours, nginx, "per_second")),
                    _fmt_ratio(cell_ratio(ours, ipx, "mean_bytes")),
                    _fmt_ratio(cell_ratio(ours, ipx, "peak_rss")),
                ]
            )
    return markdown_table(
        [
            "workload",
            "conns",
            "req/s ours/ipx",
            "ours/thumbor",
            "ours/in-process limit",
            "ours-hits/nginx",
            "bytes ours/ipx",
            "peak RSS ours/ipx",
        ],
        rows,
    )


def _speed_and_bytes(
    cells: Sequence[Cell],
    workload: str,
    connections: Sequence[int],
    min_speed: float,
    max_bytes: float,
) -> TargetResult:
    name = (
        f"{workload} cold >= {min_speed}x ipx req/s with mean bytes <= {max_bytes}x ipx "
        f"(at every connection count)"
    )
    parts, ok = [], True
    for conns in connections:
        ours, ipx = find(cells, OURS, workload, conns), find(cells, IPX, workload, conns)
        speed = cell_ratio(ours, ipx, "per_second")
        size = cell_ratio(ours, ipx, "mean_bytes")
        if speed is None or size is None:
            return TargetResult(name, "n/a", f"ours or ipx not measured at {conns} connections")
        ok = ok and speed >= min_speed and size <= max_bytes
        parts.append(f"c{conns}: {speed:.2f}x req/s, {size:.2f}x bytes")
    return TargetResult(name, "PASS" if ok else "FAIL", "; ".join(parts))


def _vs_limit(
    cells: Sequence[Cell], workloads: Sequence[str], connections: Sequence[int]
) -> TargetResult:
    name = (
        f"{' and '.join(workloads)} cold >= 0.9x the in-process limit (at every connection count)"
    )
    parts, ok = [], True
    for workload in workloads:
        limit = find(cells, LIMIT, workload, None)
        for conns in connections:
            ours = find(cells, OURS, workload, conns)
            ratio = cell_ratio(ours, limit, "per_second")
            if ratio is None:
                return TargetResult(name, "n/a", f"ours or the limit not measured for {workload}")
            ok = ok and ratio >= 0.9
            parts.append(f"{workload} c{conns}: {ratio:.2f}x")
    return TargetResult(name, "PASS" if ok else "FAIL", "; ".join(parts))


def evaluate_targets(
    cells: Sequence[Cell],
    connections: Sequence[int],
    *,
    hit_workload: str,
    cold_workloads: Sequence[str],
    soak: SoakResult | None = None,
) -> list[TargetResult]:
    """Issue 2's targets, each judged on this run's cells."""
    results = [
        _speed_and_bytes(cells, "m WebP", connections, 1.3, 1.05),
        _speed_and_bytes(cells, "m JPEG", connections, 1.1, 1.0),
        _vs_limit(cells, ["m WebP", "m JPEG"], connections),
    ]

    results.append(_avif_p99(cells, "l AVIF usable on a miss: ours p99 < 2 s at 8 connections",
                             2000))
    results.append(_hits_vs_nginx(cells, hit_workload, connections, 0.25))

    name = "peak RSS under cold load <= 0.6x ipx's"
    ours_peak = max(
        (c.peak_rss for c in cells if c.participant == OURS and c.workload in cold_workloads),
        default=0,
    )
    ipx_peak = max(
        (c.peak_rss for c in cells if c.participant == IPX and c.workload in cold_workloads),
        default=0,
    )
    ratio = _ratio(ours_peak or None, ipx_peak or None)
    if ratio is None:
        results.append(TargetResult(name, "n/a", "ours or ipx not measured under cold load"))
    else:
        results.append(
            TargetResult(
                name,
                "PASS" if ratio <= 0.6 else "FAIL",
                f"ours {_mb(ours_peak)} MB vs ipx {_mb(ipx_peak)} MB = {ratio:.2f}x",
            )
        )

    name = "no RSS growth over a 5-minute cold run (--soak 300)"
    if soak is None or not soak.samples:
        results.append(TargetResult(name, "n/a", "not run (add --soak 300)"))
    else:
        early, late = soak.windows()
        if soak.growth > SOAK_GROWTH_LIMIT:
            status = "FAIL"
        else:
            status = "PASS" if soak.seconds >= 299 else "n/a (shorter than 5 minutes)"
        results.append(
            TargetResult(
                name,
                status,
                f"{soak.seconds:.0f} s: median RSS {early / 2**20:.0f} MB early -> "
                f"{late / 2**20:.0f} MB late "
                f"({soak.growth * 100:+.1f} %, limit +{SOAK_GROWTH_LIMIT * 100:.0f} %)",
            )
        )
    return results


def _avif_p99(cells: Sequence[Cell], name: str, limit_ms: float) -> TargetResult:
    """Ours at l AVIF, 8 connections: p99 under ``limit_ms`` (issue 2: 2 s, issue 11: 1 s)."""
    avif = find(cells, OURS, "l AVIF", 8)
    if avif is None or avif.completed == 0:
        return TargetResult(name, "n/a" if avif is None else "FAIL", "no completed response")
    return TargetResult(name, "PASS" if avif.p99_ms < limit_ms else "FAIL",
                        f"p99 {avif.p99_ms:.0f} ms over {avif.completed} responses")


def _ours_vs_peer(cells: Sequence[Cell], name: str, workload: str, peer: str,
                  connections: Sequence[int], minimum: float, missing: str) -> TargetResult:
    """Ours / ``peer`` req/s >= ``minimum`` at every connection count; n/a with ``missing``
    (formatted with ``conns``) as soon as one cell is absent."""
    parts, status = [], "PASS"
    for conns in connections:
        ratio = cell_ratio(find(cells, OURS, workload, conns), find(cells, peer, workload, conns))
        if ratio is None:
            return TargetResult(name, "n/a", missing.format(conns=conns))
        if ratio < minimum:
            status = "FAIL"
        parts.append(f"c{conns}: {ratio:.2f}x")
    return TargetResult(name, status, "; ".join(parts))


def _hits_vs_nginx(
    cells: Sequence[Cell], hit_workload: str, connections: Sequence[int], minimum: float
) -> TargetResult:
    name = f"cache hits >= {minimum}x nginx static req/s (at every connection count)"
    return _ours_vs_peer(cells, name, hit_workload, NGINX, connections, minimum,
                         "c{conns}: not measured")


def evaluate_issue11_targets(
    cells: Sequence[Cell], connections: Sequence[int], *, hit_workload: str
) -> list[TargetResult]:
    """Issue 11's targets that this benchmark measures: misses (fast, provisional encodes)
    stay fast, hits unchanged. Its byte targets are the quality benchmark's (final renditions);
    its refine-lane targets are ``bench/refine_lane.py``'s."""
    results = [
        _ours_vs_peer(cells, f"{workload} cold >= 1.3x ipx req/s (at every connection count)",
                      workload, IPX, connections, 1.3,
                      "ours or ipx not measured at {conns} connections")
        for workload in ("m WebP", "m JPEG")
    ]
    results.append(_avif_p99(cells, "l AVIF cold: ours p99 < 1 s at 8 connections", 1000))
    results.append(_hits_vs_nginx(cells, hit_workload, connections, 0.3))
    return results


def targets_table(targets: Sequence[TargetResult], issue: int = 2) -> str:
    return markdown_table(
        [f"target (issue {issue})", "result", "measured"],
        [[t.name, t.status, t.detail] for t in targets],
    )


def soak_table(soak: SoakResult, every: float = 30.0) -> str:
    rows, next_t = [], 0.0
    for t, rss in soak.samples:
        if t >= next_t:
            rows.append([f"{t:.0f}", _mb(rss)])
            next_t = t + every
    return markdown_table(["seconds", "RSS MB (process tree)"], rows)
