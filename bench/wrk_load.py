"""Drive a server with ``wrk`` over a rotation of URLs and read back throughput and latency.

wrk is a C event loop: one wrk thread keeps dozens of connections busy for a few percent of a
core, where a Python load generator would need a core of its own and so starve the servers on
this 2-core machine. A generated Lua script rotates over the URL list (each connection asks for
the next path) and its ``done`` hook prints one JSON line with wrk's own counters and latency
percentiles, which is all we parse: no scraping of the human-readable report.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

_MARK = "WRKJSON "

_LUA = """\
local paths = {%(paths)s}
local prefixes = {%(prefixes)s}
local next_index = 0

function init(args)
  next_index = tonumber(args[1] or "0")
end

function request()
  next_index = next_index + 1
  local pass = math.floor(next_index / #paths) %% #prefixes
  return wrk.format("GET", prefixes[pass + 1] .. paths[(next_index %% #paths) + 1])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%(mark)s{"requests":%%d,"duration_us":%%d,"bytes":%%d,"connect":%%d,"read":%%d,' ..
    '"write":%%d,"status":%%d,"timeout":%%d,"p50_us":%%d,"p90_us":%%d,"p99_us":%%d,' ..
    '"max_us":%%d,"mean_us":%%f}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"""


class WrkMissing(RuntimeError):
    """wrk is not installed; the message says how to install it."""


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What one wrk run measured. Latencies in milliseconds, over completed responses only."""

    requests: int
    """Responses completed, any status."""
    non_2xx: int
    """Responses with a status >= 400 (wrk counts 4xx/5xx, e.g. our 503 backpressure)."""
    socket_errors: int
    """Connect/read/write errors and timeouts."""
    seconds: float
    bytes_read: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def ok(self) -> int:
        return max(self.requests - self.non_2xx, 0)

    @property
    def ok_per_second(self) -> float:
        """Successful responses per second: the throughput we compare (503s are not work done)."""
        return self.ok / self.seconds if self.seconds > 0 else 0.0


def wrk_binary() -> str:
    path = shutil.which("wrk")
    if not path:
        raise WrkMissing(
            "wrk not found: install it with `apt-get install -y wrk` (Debian package `wrk`)"
        )
    return path


def lua_script(paths: list[str], prefixes: list[str] | None = None) -> str:
    """The rotation script: ``prefix + path`` for each path in turn, the next prefix each pass.

    Prefixes give a server that coalesces equal requests a fresh set of keys on every pass
    without listing (and storing) every combination.
    """

    def quoted(items: list[str]) -> str:
        return ", ".join(json.dumps(item) for item in items)

    return _LUA % {"paths": quoted(paths), "prefixes": quoted(prefixes or [""]), "mark": _MARK}


def parse_output(stdout: str) -> LoadResult:
    """The JSON line our ``done`` hook printed; raises ValueError if wrk printed none."""
    for line in stdout.splitlines():
        if line.startswith(_MARK):
            raw = json.loads(line[len(_MARK) :])
            return LoadResult(
                requests=raw["requests"],
                non_2xx=raw["status"],
                socket_errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
                seconds=raw["duration_us"] / 1e6,
                bytes_read=raw["bytes"],
                p50_ms=raw["p50_us"] / 1000,
                p90_ms=raw["p90_us"] / 1000,
                p99_ms=raw["p99_us"] / 1000,
                max_ms=raw["max_us"] / 1000,
            )
    raise ValueError(f"wrk printed no result line:\n{stdout[-2000:]}")


def run_wrk(
    base_url: str,
    paths: list[str],
    *,
    prefixes: list[str] | None = None,
    connections: int,
    seconds: float,
    threads: int = 1,
    start_index: int = 0,
) -> LoadResult:
    """Run wrk for ``seconds`` with ``connections`` over ``paths`` rotating from ``start_index``.

    The request timeout is longer than the run, so a slow response is measured instead of
    being dropped as a timeout (wrk leaves timed-out requests out of its latency figures).
    """
    with tempfile.TemporaryDirectory(prefix="imgpro-wrk-") as tmp:
        script = Path(tmp) / "rotate.lua"
        script.write_text(lua_script(paths, prefixes))
        cmd = [
            wrk_binary(),
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            f"--timeout={max(10, round(seconds) + 10)}s",
            "--latency",
            "-s",
            str(script),
            base_url,
            "--",
            str(start_index),
        ]
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=seconds + 120, check=False
        )
    if done.returncode != 0:
        raise RuntimeError(
            f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout[-500:]}"
        )
    return parse_output(done.stdout)
